# Evaluates clan-service.nix without clan-core or nixpkgs: the perMachine
# NixOS module for several machines of a made-up inventory, given a
# stand-in `config` with the clan vars a deployment would have. Checks the
# service's own logic, not clan-core's inventory. agent/nixos_test.go
# evaluates it with --argstr clanDir DIR, where
# DIR/vars/per-machine/gate/data-mesher-node/node.pub/value holds the
# signer gate's public key (the signer ghost has none yet).
{ clanDir }:
let
  inherit (import ./stub-lib.nix) lib pkgs resolve;
  service = import ./clan-service.nix { agentModule = "agent-module"; } { };
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
  # What clan-core passes to perMachine: each instance's roles, with the
  # role-wide settings and each machine's own.
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
  config = name: {
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
    ) instances;
  };
  # One machine's NixOS module as NixOS would see it (mkIf applied).
  machine =
    name:
    let
      m = service.perMachine {
        inherit instances;
        machine = {
          inherit name;
          roles = [ ];
        };
      };
    in
    resolve (
      m.nixosModule {
        inherit lib pkgs;
        config = config name;
      }
    );
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
