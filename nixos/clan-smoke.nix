# Evaluates clan-service.nix without clan-core or nixpkgs: for each machine
# of a made-up inventory, the perInstance NixOS modules of its roles, as
# clan-core would hand them to NixOS, merged by the small module system of
# stub-lib.nix with a stand-in for what a deployment provides (clan vars,
# the host name, the package). Checks the service's own logic, not
# clan-core's inventory. agent/nixos_test.go evaluates it with
# --argstr clanDir DIR, where
# DIR/vars/per-machine/gate/data-mesher-node/node.pub/value holds the
# signer gate's public key (the signer ghost has none yet).
{ clanDir }:
let
  inherit (import ./stub-lib.nix) lib pkgs evalModules;
  # Stands in for nixosModules.dm-agent: records each time it is imported.
  agentModule = {
    key = "agent-module";
    config.services.dm-agent.importedBy = [ "agent-module" ];
  };
  service = import ./clan-service.nix { inherit agentModule; } { };
  mesh = {
    domain = "clan";
    interface = "wg0";
    priority = 1.5;
    bootstrapPeers = [ "http://[fd27::1]:7331" ];
  };
  lab = {
    domain = "lab";
    interface = "wg0";
    priority = 2;
    bootstrapPeers = [ ];
  };
  # The inventory: each instance's roles, with the role-wide settings and
  # each machine's own, as clan-core passes them to perInstance.
  instances = {
    mesh.roles = {
      peer.settings = {
        inherit (mesh) domain priority bootstrapPeers;
      };
      peer.machines = {
        gate.settings = mesh;
        beta.settings = mesh;
        split.settings = mesh;
        twice.settings = mesh;
      };
      signer.settings = { };
      signer.machines = {
        gate.settings = { };
        ghost.settings = { };
      };
      admin.settings = { };
      admin.machines = {
        gate.settings = { };
        solo.settings = { };
      };
    };
    lab.roles.peer = {
      settings = { };
      machines = {
        beta.settings = lab;
        split.settings = lab // {
          interface = "wg1";
        };
        twice.settings = lab // {
          domain = "clan";
        };
      };
    };
  };
  # What a deployment provides.
  base = name: {
    networking.hostName = name;
    services.dm-agent.package = pkgs.data-mesher;
    clan.core.settings.directory = clanDir;
    clan.core.vars.generators = {
      data-mesher-node.files."node.key".path = "/run/secrets/vars/data-mesher-node/node.key";
    }
    // lib.mapAttrs' (
      n: _:
      lib.nameValuePair "data-mesher-network-${n}" {
        files = {
          "network.pub".value = "ssh-ed25519 network-${n}";
          "network.key".path = "/run/secrets/vars/data-mesher-network-${n}/network.key";
        };
      }
    ) instances
    // lib.mapAttrs' (
      n: _:
      lib.nameValuePair "data-mesher-admin-${n}" {
        files."network.key".path = "/run/secrets/vars/data-mesher-admin-${n}/network.key";
      }
    ) instances;
  };
  # The perInstance modules of one machine's roles.
  roleModules =
    name:
    lib.concatMap (
      instanceName:
      let
        inst = instances.${instanceName};
        mine = builtins.filter (r: (inst.roles.${r}.machines or { }) ? ${name}) (builtins.attrNames inst.roles);
      in
      map (
        role:
        (service.roles.${role}.perInstance {
          inherit instanceName;
          inherit (inst) roles;
          settings = inst.roles.${role}.machines.${name}.settings;
          machine = {
            inherit name;
            roles = mine;
          };
        }).nixosModule
      ) mine
    ) (builtins.attrNames instances);
  machine = name: evalModules ([ (base name) ] ++ roleModules name);
in
{
  inherit (service) manifest;
  roles = builtins.attrNames service.roles;
  interfaces = builtins.mapAttrs (
    _: r: if builtins.isFunction r.interface then builtins.attrNames (r.interface { inherit lib; }).options else [ ]
  ) service.roles;
  machines = lib.mapAttrs (name: _: machine name) {
    gate = { };
    beta = { };
    solo = { };
    outsider = { };
    split = { };
    twice = { };
  };
}
