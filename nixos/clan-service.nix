# data-mesher as a clan-core service (clanServices format), exported by the
# flake as clan.modules.dm-agent. Roles, per instance (one instance is one
# network):
#   peer    every machine of the mesh: claims its hostname, resolves the
#           others. Its settings are the network's: domain, interface,
#           priority, bootstrap peers.
#   signer  countersigns every claim it sees, so names work without internet
#   admin   holds the network key and publishes the network's settings,
#           naming the signers as witnesses
# Admins and signers join the network too, with the peer role's settings
# when they are not peers themselves. A machine runs one agent for all the
# instances it is in (perMachine); it is configured under services.dm-agent,
# since clan-core declares services.data-mesher for its own data-mesher.
#
# agentModule: the NixOS module that declares services.dm-agent and sets
# its package (the flake passes nixosModules.dm-agent).
{ agentModule }:
{ ... }:
let
  defaults = {
    domain = "clan";
    interface = "wg0";
    priority = 1;
    bootstrapPeers = [ ];
  };
  networkOptions =
    { lib, ... }:
    {
      options = {
        domain = lib.mkOption {
          type = lib.types.str;
          default = defaults.domain;
          description = "The network's DNS domain.";
        };
        interface = lib.mkOption {
          type = lib.types.str;
          default = defaults.interface;
          description = "The WireGuard interface of the clan's mesh.";
        };
        priority = lib.mkOption {
          type = lib.types.number;
          default = defaults.priority;
          description = "Priority against other joined networks (lower wins; 1.5 is valid).";
        };
        bootstrapPeers = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = defaults.bootstrapPeers;
          description = "data.json sources for a first join (peers' endpoints or static files).";
        };
      };
    };
in
{
  _class = "clan.service";
  manifest.name = "dm-agent";
  manifest.description = "Names for the clan's WireGuard mesh, without a central DNS server (data-mesher)";
  manifest.categories = [ "Network" ];

  roles.peer = {
    description = "A machine of the mesh: claims its hostname, resolves the others. Its settings are the network's.";
    interface = networkOptions;
  };
  roles.signer = {
    description = "A witness: countersigns claims, so names work without internet access.";
    interface = { };
  };
  roles.admin = {
    description = "Holds the network key and publishes the network's settings, with the signers as witnesses.";
    interface = { };
  };

  perMachine =
    { instances, machine, ... }:
    {
      nixosModule =
        {
          config,
          lib,
          ...
        }:
        let
          me = machine.name;
          has = inst: role: (inst.roles.${role}.machines or { }) ? ${me};
          joined = lib.filterAttrs (
            _: inst:
            lib.any (has inst) [
              "peer"
              "signer"
              "admin"
            ]
          ) instances;
          # The network's settings as this machine sees them.
          network =
            inst:
            defaults
            // (
              if has inst "peer" then inst.roles.peer.machines.${me}.settings else inst.roles.peer.settings or { }
            );
          networks = lib.mapAttrs (_: network) joined;
          nets = lib.attrValues networks;
          domains = map (n: n.domain) nets;
          interfaces = lib.unique (map (n: n.interface) nets);

          gen = config.clan.core.vars.generators;
          networkGen = name: "data-mesher-network-${name}";
          pkg = config.services.dm-agent.package;

          # A signer's public key, from its vars (public files live in the
          # clan's repository). A signer whose vars are not generated yet
          # is left out, with a warning.
          signerKey =
            machine:
            let
              file = "${config.clan.core.settings.directory}/vars/per-machine/${machine}/data-mesher-node/node.pub/value";
            in
            if builtins.pathExists file then
              [ (lib.strings.trim (builtins.readFile file)) ]
            else
              lib.warn "dm-agent: signer ${machine} has no node key yet (run `clan vars generate ${machine}`); it is not a witness until then" [ ];

          # The admin's unit for one network: creates its settings once, for
          # a new network; after that only adds new signers, so policy made
          # with `dm-agent settings` (bans, overrides, extra records) is kept.
          # The agent gets 30 s to sync existing settings before the network
          # counts as new. Once this machine has created them, it never
          # creates them again (fresh settings would replace the network's
          # policy): if the agent has not synced them yet, the unit fails and
          # tries again a minute later.
          publish =
            name: inst:
            let
              n = networks.${name};
              keys = lib.concatMap signerKey (lib.attrNames (inst.roles.signer.machines or { }));
              witnesses = lib.concatMapStringsSep " " (k: "--witness ${lib.escapeShellArg k}") keys;
              key = ''--admin-key "$CREDENTIALS_DIRECTORY/network-key"'';
            in
            {
              description = "Publish the settings of data-mesher network ${n.domain}";
              wantedBy = [ "multi-user.target" ];
              after = [ "data-mesher.service" ];
              requires = [ "data-mesher.service" ];
              serviceConfig = {
                Type = "oneshot";
                LoadCredential = "network-key:${gen.${networkGen name}.files."network.key".path}";
                StateDirectory = "data-mesher-admin";
                Restart = "on-failure";
                RestartSec = "1min";
              };
              script = ''
                dm=${pkg}/bin/dm-agent
                created="$STATE_DIRECTORY/${n.domain}.created"
                for _ in $(seq 60); do
                  $dm status >/dev/null 2>&1 && break
                  sleep 1
                done
                has_settings() { $dm settings --network ${n.domain} --show >/dev/null 2>&1; }
                for _ in $(seq 30); do
                  has_settings && break
                  sleep 1
                done
                if has_settings; then
                  ${if keys == [ ] then ":" else "$dm settings --network ${n.domain} ${key} ${witnesses}"}
                elif [ -e "$created" ]; then
                  echo "network ${n.domain}: this machine created its settings before, but the agent has not synced them yet; not creating new ones" >&2
                  exit 1
                else
                  $dm network create --domain ${n.domain} ${key} --publish ${witnesses}
                  touch "$created"
                fi
              '';
            };
          administered = lib.filterAttrs (_: inst: has inst "admin") joined;
        in
        {
          imports = [ agentModule ];

          assertions = [
            {
              assertion = lib.length interfaces <= 1;
              message = "dm-agent: one agent serves one WireGuard interface, but the networks of machine ${me} name several: ${toString interfaces}.";
            }
            {
              assertion = lib.length (lib.unique domains) == lib.length domains;
              message = "dm-agent: each network of machine ${me} needs its own domain; they are: ${toString domains}.";
            }
          ];

          services.dm-agent = lib.mkIf (joined != { }) {
            enable = true;
            interface = lib.head (interfaces ++ [ defaults.interface ]);
            openFirewall = true;
            keyFile = gen.data-mesher-node.files."node.key".path;
            networks = lib.listToAttrs (
              lib.mapAttrsToList (name: n: {
                name = n.domain;
                value = {
                  pubkey = gen.${networkGen name}.files."network.pub".value;
                  inherit (n) priority bootstrapPeers;
                };
              }) networks
            );
          };

          clan.core.vars.generators = {
            # The machine's own key, one for all its networks.
            data-mesher-node = {
              files."node.key" = { };
              files."node.pub".secret = false;
              runtimeInputs = [ pkg ];
              script = ''
                dm-agent keygen --out "$out/node.key" --comment ${lib.escapeShellArg config.networking.hostName} > "$out/node.pub"
                rm -f "$out/node.key.pub"
              '';
            };
          }
          # Each network's key: one per instance, shared by its machines;
          # only admins get the private half.
          // lib.mapAttrs' (
            name: inst:
            lib.nameValuePair (networkGen name) {
              share = true;
              files."network.key".deploy = has inst "admin";
              files."network.pub".secret = false;
              runtimeInputs = [ pkg ];
              script = ''
                dm-agent keygen --out "$out/network.key" --comment ${lib.escapeShellArg "data-mesher ${name}"} > "$out/network.pub"
                rm -f "$out/network.key.pub"
              '';
            }
          ) joined;

          systemd.services = lib.mapAttrs' (
            name: inst: lib.nameValuePair "data-mesher-settings-${name}" (publish name inst)
          ) administered;
        };
    };
}
