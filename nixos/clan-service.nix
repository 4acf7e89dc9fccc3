# data-mesher as a clan-core service (clanServices format), exported by the
# flake as clan.modules.dm-agent. One instance is one network. Roles:
#   peer    a machine of the mesh: claims its hostname, resolves the
#           others. Its settings are the network's: domain, interface,
#           priority, bootstrap peers.
#   signer  countersigns every claim it sees, so names work without internet
#   admin   holds the network key and publishes the network's settings,
#           naming the signers as witnesses
# Admins and signers join the network too, with the peer role's settings
# when they are not peers themselves. Each role's perInstance module adds
# what that role brings; they all import one machine-wide module (keyed, so
# it counts once) that runs one agent for every instance the machine is in.
# The agent is configured under services.dm-agent, since clan-core declares
# services.data-mesher for its own data-mesher.
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
  networkGen = instanceName: "data-mesher-network-${instanceName}";
  adminGen = instanceName: "data-mesher-admin-${instanceName}";

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

  # Machine-wide: the agent, the machine's key, and checks across the
  # instances the roles below record in services.dm-agent.clanInstances
  # (under our own namespace: clan-core owns clan.*).
  machineModule = {
    key = "data-mesher#clan-service-machine";
    imports = [
      agentModule
      (
        { config, lib, ... }:
        let
          nets = lib.attrValues config.services.dm-agent.clanInstances;
          interfaces = lib.unique (map (n: n.interface) nets);
          domains = map (n: n.domain) nets;
        in
        {
          options.services.dm-agent.clanInstances = lib.mkOption {
            internal = true;
            type = lib.types.attrsOf (
              lib.types.submodule {
                options = {
                  domain = lib.mkOption {
                    type = lib.types.str;
                    description = "The network's domain.";
                  };
                  interface = lib.mkOption {
                    type = lib.types.str;
                    description = "The network's WireGuard interface.";
                  };
                };
              }
            );
            default = { };
            description = "The dm-agent instances (networks) this machine is in, by instance name.";
          };

          config = lib.mkIf (nets != [ ]) {
            assertions = [
              {
                assertion = lib.length interfaces == 1;
                message = "dm-agent: one agent serves one WireGuard interface, but the networks of machine ${config.networking.hostName} name several: ${toString interfaces}.";
              }
              {
                assertion = lib.length (lib.unique domains) == lib.length domains;
                message = "dm-agent: each network of machine ${config.networking.hostName} needs its own domain; they are: ${toString domains}.";
              }
            ];
            services.dm-agent = {
              enable = true;
              interface = lib.head (interfaces ++ [ defaults.interface ]);
              openFirewall = true;
              keyFile = config.clan.core.vars.generators.data-mesher-node.files."node.key".path;
            };
            # The machine's own key, one for all its networks.
            clan.core.vars.generators.data-mesher-node = {
              files."node.key" = { };
              files."node.pub".secret = false;
              runtimeInputs = [ config.services.dm-agent.package ];
              script = ''
                dm-agent keygen --out "$out/node.key" --comment ${lib.escapeShellArg config.networking.hostName} > "$out/node.pub"
                rm -f "$out/node.key.pub"
              '';
            };
          };
        }
      )
    ];
  };

  # Joins the machine to one instance's network. Exactly one role module
  # per machine and instance does this: the first of peer, signer, admin
  # that the machine has there.
  join =
    {
      instanceName,
      machine,
      roles,
      role,
    }:
    { config, lib, ... }:
    let
      n = network machine roles;
      first = lib.head (lib.filter (r: lib.elem r machine.roles) [ "peer" "signer" "admin" ]);
      gen = networkGen instanceName;
    in
    {
      imports = [ machineModule ];
    }
    // lib.optionalAttrs (first == role) {
      services.dm-agent.clanInstances.${instanceName} = {
        inherit (n) domain interface;
      };
      # Labelled by instance: two instances that name the same domain meet
      # the assertion above, not a merge conflict.
      services.dm-agent.networks.${instanceName} = {
        pubkey = config.clan.core.vars.generators.${gen}.files."network.pub".value;
        inherit (n) domain priority bootstrapPeers;
      };
      # The network's key: one per instance, shared by its machines. A
      # shared generator must be defined alike on every machine (clan
      # checks), so its private half is deployed nowhere; admins get a copy
      # from their own generator (see roles.admin).
      clan.core.vars.generators.${gen} = {
        share = true;
        files."network.key".deploy = false;
        files."network.pub".secret = false;
        runtimeInputs = [ config.services.dm-agent.package ];
        script = ''
          dm-agent keygen --out "$out/network.key" --comment ${lib.escapeShellArg "data-mesher ${instanceName}"} > "$out/network.pub"
          rm -f "$out/network.key.pub"
        '';
      };
    };

  # A role's perInstance that only joins the network.
  joinAs =
    role:
    {
      instanceName,
      machine,
      roles,
      ...
    }:
    {
      nixosModule = join { inherit instanceName machine roles role; };
    };

  # The network's settings as a machine sees them: its own as a peer, else
  # the peer role's (role-wide) settings.
  network =
    machine: roles:
    defaults
    // (
      if builtins.elem "peer" machine.roles then
        roles.peer.machines.${machine.name}.settings
      else
        roles.peer.settings or { }
    );
in
{
  _class = "clan.service";
  manifest.name = "dm-agent";
  manifest.description = "Names for the clan's WireGuard mesh, without a central DNS server (data-mesher)";
  manifest.categories = [ "Network" ];
  manifest.readme = builtins.readFile ./clan-service.md;

  roles.peer = {
    description = "A machine of the mesh: claims its hostname, resolves the others. Its settings are the network's.";
    interface = networkOptions;
    perInstance = joinAs "peer";
  };

  roles.signer = {
    description = "A witness: countersigns claims, so names work without internet access.";
    interface = { };
    perInstance = joinAs "signer";
  };

  roles.admin = {
    description = "Holds the network key and publishes the network's settings, with the signers as witnesses.";
    interface = { };
    perInstance =
      {
        instanceName,
        machine,
        roles,
        ...
      }:
      {
        nixosModule =
          {
            config,
            lib,
            pkgs,
            ...
          }:
          let
            n = network machine roles;
            adminKey = config.clan.core.vars.generators.${adminGen instanceName}.files."network.key".path;
            dm = "${config.services.dm-agent.package}/bin/dm-agent";

            # A signer's public key, from its vars (public files live in the
            # clan's repository). A signer whose vars are not generated yet
            # is left out, with a warning.
            signerKey =
              signer:
              let
                file = "${config.clan.core.settings.directory}/vars/per-machine/${signer}/data-mesher-node/node.pub/value";
              in
              if builtins.pathExists file then
                [ (lib.strings.trim (builtins.readFile file)) ]
              else
                lib.warn "dm-agent: signer ${signer} has no node key yet (run `clan vars generate ${signer}`); it is not a witness until then" [ ];
            keys = lib.concatMap signerKey (lib.attrNames (roles.signer.machines or { }));
            witnesses = lib.concatMapStringsSep " " (k: "--witness ${lib.escapeShellArg k}") keys;
            key = ''--admin-key "$CREDENTIALS_DIRECTORY/network-key"'';
          in
          {
            imports = [
              (join {
                inherit instanceName machine roles;
                role = "admin";
              })
            ];
            # The admin's copy of the network's private key, deployed to
            # this machine only.
            clan.core.vars.generators.${adminGen instanceName} = {
              dependencies = [ (networkGen instanceName) ];
              files."network.key" = { };
              script = ''
                cp "$in/${networkGen instanceName}/network.key" "$out/network.key"
              '';
            };

            # Creates the network's settings once, for a new network; after
            # that only adds new signers, so policy made with `dm-agent
            # settings` (bans, overrides, extra records) is kept. The network
            # counts as new when the agent has synced with the mesh and
            # found no settings, or has found no peer to sync with in five
            # minutes. Once this machine has created them, it never creates
            # them again (fresh settings would replace the network's policy):
            # if the agent has not synced them yet, the unit fails and tries
            # again a minute later.
            systemd.services."data-mesher-settings-${instanceName}" = {
              description = "Publish the settings of data-mesher network ${n.domain}";
              wantedBy = [ "multi-user.target" ];
              after = [ "data-mesher.service" ];
              requires = [ "data-mesher.service" ];
              serviceConfig = {
                Type = "oneshot";
                LoadCredential = "network-key:${adminKey}";
                StateDirectory = "data-mesher-admin";
                Restart = "on-failure";
                RestartSec = "1min";
              };
              script = ''
                dm=${dm}
                created="$STATE_DIRECTORY/${instanceName}.created"
                for _ in $(seq 60); do
                  $dm status >/dev/null 2>&1 && break
                  sleep 1
                done
                has_settings() { $dm settings --network ${instanceName} --show >/dev/null 2>&1; }
                synced() { $dm status --json 2>/dev/null | ${pkgs.jq}/bin/jq -e .synced >/dev/null; }
                for _ in $(seq 300); do
                  if has_settings || synced; then break; fi
                  sleep 1
                done
                if has_settings; then
                  ${if keys == [ ] then ":" else "$dm settings --network ${instanceName} ${key} ${witnesses}"}
                elif [ -e "$created" ]; then
                  echo "network ${n.domain}: this machine created its settings before, but the agent has not synced them yet; not creating new ones" >&2
                  exit 1
                else
                  $dm network create --domain ${n.domain} ${key} --publish ${witnesses}
                  touch "$created"
                fi
              '';
            };
          };
      };
  };
}
