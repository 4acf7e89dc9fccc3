# data-mesher as a clan-core service (clanServices format), exported by the
# flake as clan.modules.dm-agent. One instance is one network. Roles:
#   peer    a machine of the mesh: claims its host name (and its
#           extraHostNames), resolves the others. Its settings are its view
#           of the network: domain, interface, priority, bootstrap peers.
#   signer  a peer that countersigns every claim it sees, so names work
#           without internet access. No settings.
#   admin   a peer that holds the network key and publishes the network's
#           settings (its hostTTL, the signers as witnesses).
# Every machine of an instance is a peer of it; signer and admin are roles
# a peer takes on as well. Each machine runs one agent for all the
# instances it is in (perMachine), configured under services.dm-agent,
# since clan-core declares services.data-mesher for its own data-mesher.
# Settings are read per machine (roles.<role>.machines.<name>.settings), as
# clan-core asks; a role without settings refuses them.
#
# agentModule: the NixOS module that declares services.dm-agent and sets
# its package (the flake passes nixosModules.dm-agent).
{ agentModule }:
{ clanLib, lib, ... }:
let
  inherit (import ./types.nix lib) interfaceName domainName;
  nodeGen = "data-mesher-node";
  networkGen = instanceName: "data-mesher-network-${instanceName}";
  adminGen = instanceName: "data-mesher-admin-${instanceName}";
  q = lib.escapeShellArg;

  peerOptions = {
    options = {
      domain = lib.mkOption {
        type = domainName;
        default = "clan";
        description = "The network's DNS domain; alike on every peer of the instance.";
      };
      interface = lib.mkOption {
        type = interfaceName;
        default = "wg0";
        description = "The WireGuard interface of the clan's mesh on this machine.";
      };
      priority = lib.mkOption {
        type = lib.types.number;
        default = 1;
        description = "Priority against the machine's other networks (lower wins; 1.5 is valid).";
      };
      bootstrapPeers = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = "data.json sources for a first join (peers' endpoints or static files).";
      };
      extraHostNames = lib.mkOption {
        type = lib.types.listOf domainName;
        default = [ ];
        example = [ "git" ];
        description = "Names this machine claims in the network besides its host name.";
      };
    };
  };

  adminLib = import ./admin.nix lib;
  adminOptions = {
    options.namespaces = adminLib.namespacesOption;
    options.aliases = adminLib.aliasesOption;
    config.namespaces = adminLib.namespaceDefaults;
    options.hostTTL = lib.mkOption {
      type = lib.types.nullOr (
        lib.types.strMatching "([0-9]+(ns|us|ms|s|m|h))+"
        // {
          description = "duration such as \"24h\" or \"672h\"";
        }
      );
      default = null;
      example = "672h";
      description = ''
        How long a host stays in the network without a heartbeat, in the
        network's signed settings. null: dm-agent's default (24h) when the
        network is created, and whatever `dm-agent settings` made it later;
        set: applied on every start of the admin's unit. Alike on every
        admin of the instance.
      '';
    };
  };

  # Reading a role's settings checks them against its interface: settings
  # on a role without any fail there ("does not exist") instead of being
  # dropped.
  noSettings = settings: v: builtins.seq (builtins.attrNames settings) v;

  # The peer settings of machine `name` in an instance (roles as clan-core
  # passes them), or null when it is no peer there.
  peerSettings = roles: name: roles.peer.machines.${name}.settings or null;
in
{
  _class = "clan.service";
  manifest.name = "dm-agent";
  manifest.description = "Names for the clan's WireGuard mesh, without a central DNS server (data-mesher)";
  manifest.categories = [ "Network" ];
  manifest.readme = builtins.readFile ./clan-service.md;

  roles.peer = {
    description = "A machine of the mesh: claims its host name, resolves the others. Its settings are its view of the network.";
    interface = peerOptions;
  };

  roles.signer = {
    description = "A peer that countersigns claims, so names work without internet access.";
    interface = { };
    perInstance = { settings, ... }: noSettings settings { };
  };

  roles.admin = {
    description = "A peer that holds the network key and publishes the network's settings, with the signers as witnesses.";
    interface = adminOptions;
    perInstance =
      {
        instanceName,
        machine,
        roles,
        settings,
        ...
      }:
      {
        nixosModule =
          { config, lib, ... }:
          let
            peer = peerSettings roles machine.name;
            adminKey = config.clan.core.vars.generators.${adminGen instanceName}.files."network.key".path;

            # A signer's public key, through clan's vars API (public files
            # of the clan's repository). A signer whose vars are not
            # generated yet is left out, with a warning.
            signerKey =
              signer:
              let
                pub = clanLib.getPublicValue {
                  flake = config.clan.core.settings.directory;
                  machine = signer;
                  generator = nodeGen;
                  file = "node.pub";
                  default = null;
                };
              in
              if pub != null then
                [ (lib.trim pub) ]
              else
                lib.warn "dm-agent: signer ${signer} has no node key yet (run `clan vars generate ${signer}`); it is not a witness until then" [ ];
            admins = roles.admin.machines;
            ttls = lib.unique (lib.mapAttrsToList (_: m: m.settings.hostTTL) admins);
            # The namespaces as dm-agent is told them, and each alias's
            # targets, over all admins of the instance.
            specs = lib.unique (lib.mapAttrsToList (_: m: adminLib.namespaceSpecs m.settings.namespaces) admins);
            targets = lib.zipAttrsWith (_: lib.unique) (lib.mapAttrsToList (_: m: m.settings.aliases) admins);
          in
          {
            assertions = [
              {
                assertion = lib.length ttls == 1;
                message = "dm-agent: the admins of instance ${instanceName} give different hostTTL settings (${
                  lib.concatMapStringsSep ", " (t: if t == null then "null" else t) ttls
                }); the network has one.";
              }
              {
                # Else each admin's unit would redeclare them its way.
                assertion = lib.length specs == 1;
                message = "dm-agent: the admins of instance ${instanceName} declare different namespaces (${
                  lib.concatMapStringsSep "; " (lib.concatStringsSep ", ") specs
                }); the network has one set.";
              }
            ]
            ++ lib.mapAttrsToList (name: ts: {
              assertion = lib.length ts == 1;
              message = "dm-agent: the admins of instance ${instanceName} point alias ${name} at different targets (${lib.concatStringsSep ", " ts}).";
            }) targets;

            # The admin's copy of the network's private key, deployed to
            # this machine only.
            clan.core.vars.generators.${adminGen instanceName} = {
              dependencies = [ (networkGen instanceName) ];
              files."network.key" = { };
              script = ''
                cp "$in"/${q (networkGen instanceName)}/network.key "$out/network.key"
              '';
            };

            # The unit data-mesher-settings-<instance> (nixos/admin.nix)
            # creates the network's settings once, for a new network; after
            # that only adds new signers (and applies hostTTL when set) and
            # declares the namespaces, so policy made with `dm-agent
            # settings` (bans, overrides, extra records) is kept, and only
            # once the agent has synced with the mesh since it started (an
            # edit of a stale copy would replace newer settings everywhere;
            # dm-agent refuses it). The network counts as new when the
            # agent has synced with the mesh and found no settings, or has
            # found no peer to sync with in five minutes. Once this machine
            # has created them, it never creates them again (fresh
            # settings would replace the network's policy): if the agent
            # has not synced them yet, the unit fails and tries again a
            # minute later. Then it writes the aliases. (An admin that is
            # no peer fails an assertion of perMachine instead.)
            services.dm-agent.networks = lib.mkIf (peer != null) {
              ${instanceName}.admin = {
                keyFile = adminKey;
                createSettings = true;
                witnesses = lib.concatMap signerKey (lib.attrNames (roles.signer.machines or { }));
                inherit (settings) hostTTL namespaces aliases;
              };
            };
          };
      };
  };

  # One agent per machine, for every instance (network) the machine is in.
  perMachine =
    { machine, instances, ... }:
    {
      nixosModule =
        { config, lib, ... }:
        let
          # This machine's view of each instance's network.
          nets = lib.mapAttrs (_: i: peerSettings i.roles machine.name) instances;
          joined = lib.filterAttrs (_: n: n != null) nets;
          interfaces = lib.unique (lib.mapAttrsToList (_: n: n.interface) joined);
          domains = lib.mapAttrsToList (_: n: n.domain) joined;
          hostName = config.networking.hostName;
        in
        {
          imports = [ agentModule ];
          assertions =
            lib.mapAttrsToList (name: i: {
              assertion = nets.${name} != null;
              message = "dm-agent: machine ${machine.name} is ${
                lib.concatStringsSep " and " (lib.attrNames (lib.filterAttrs (_: r: r.machines ? ${machine.name}) i.roles))
              } of instance ${name} but not a peer: every machine of the network is a peer (add it to roles.peer, e.g. roles.peer.tags.all).";
            }) instances
            ++ lib.mapAttrsToList (
              name: i:
              let
                ds = lib.unique (lib.mapAttrsToList (_: m: m.settings.domain) (i.roles.peer.machines or { }));
              in
              {
                assertion = lib.length ds <= 1;
                message = "dm-agent: the peers of instance ${name} give different domains (${toString ds}); a network has one.";
              }
            ) instances
            ++ [
              {
                assertion = lib.length interfaces <= 1;
                message = "dm-agent: one agent serves one WireGuard interface, but the networks of machine ${machine.name} name several: ${toString interfaces}.";
              }
              {
                assertion = lib.length (lib.unique domains) == lib.length domains;
                message = "dm-agent: each network of machine ${machine.name} needs its own domain; they are: ${toString domains}.";
              }
            ];

          services.dm-agent = {
            enable = true;
            interface = lib.head (interfaces ++ [ "wg0" ]);
            openFirewall = true;
            keyFile = config.clan.core.vars.generators.${nodeGen}.files."node.key".path;
            # Labelled by instance: two instances that name the same domain
            # meet the assertion above, not a merge conflict.
            networks = lib.mapAttrs (name: n: {
              pubkey = lib.trim config.clan.core.vars.generators.${networkGen name}.files."network.pub".value;
              inherit (n) domain priority bootstrapPeers;
              hostnames = [ hostName ] ++ n.extraHostNames;
            }) joined;
          };

          clan.core.vars.generators = {
            # The machine's own key, one for all its networks.
            ${nodeGen} = {
              files."node.key" = { };
              files."node.pub".secret = false;
              runtimeInputs = [ config.services.dm-agent.package ];
              script = ''
                dm-agent keygen --out "$out/node.key" --comment ${q hostName} > "$out/node.pub"
                rm -f "$out/node.key.pub"
              '';
            };
          }
          # The network's key: one per instance, shared by its machines. A
          # shared generator must be defined alike on every machine (clan
          # checks), so its private half is deployed nowhere; admins get a
          # copy from their own generator (see roles.admin).
          // lib.mapAttrs' (
            name: _:
            lib.nameValuePair (networkGen name) {
              share = true;
              files."network.key".deploy = false;
              files."network.pub".secret = false;
              runtimeInputs = [ config.services.dm-agent.package ];
              script = ''
                dm-agent keygen --out "$out/network.key" --comment ${q "data-mesher ${name}"} > "$out/network.pub"
                rm -f "$out/network.key.pub"
              '';
            }
          ) instances;
        };
    };
}
