# Evaluates clan-service.nix without clan-core or nixpkgs: each role's
# perInstance NixOS module, given a stand-in `config` with the clan vars a
# deployment would have. Checks the service's own logic, not clan-core's
# inventory. agent/nixos_test.go evaluates it with --argstr clanDir DIR,
# where DIR/vars/per-machine/gate/data-mesher-node/node.pub/value holds the
# signer's public key.
{ clanDir }:
let
  inherit (import ./stub-lib.nix) lib pkgs resolve;
  service = import ./clan-service.nix { };
  settings = {
    domain = "clan";
    interface = "wg0";
    priority = 1.5;
    bootstrapPeers = [ "http://[fd27::1]:7331" ];
  };
  config = {
    networking.hostName = "gate";
    services.data-mesher.package = pkgs.data-mesher;
    clan.core.settings.directory = clanDir;
    clan.core.vars.generators = {
      data-mesher-node.files."node.key".path = "/run/secrets/vars/data-mesher-node/node.key";
      data-mesher-network.files = {
        "network.pub".value = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza+GIRyuB9C3NqY0pSWnGC4DzmQOcWOa4SafV";
        "network.key".path = "/run/secrets/vars/data-mesher-network/network.key";
      };
    };
  };
  # A role's module as NixOS would see it, its imports flattened.
  instance =
    role: extra:
    let
      m = (service.roles.${role}.perInstance ({ inherit settings; } // extra)).nixosModule {
        inherit config lib pkgs;
      };
    in
    resolve (builtins.removeAttrs m [ "imports" ]) // { imports = map resolve m.imports; };
in
{
  inherit (service) manifest;
  roles = builtins.attrNames service.roles;
  interfaces = builtins.mapAttrs (_: r: builtins.attrNames (r.interface { inherit lib; }).options) service.roles;
  peer = instance "peer" { };
  signer = instance "signer" { };
  admin = instance "admin" { roles.signer.machines.gate = { }; };
  adminAlone = instance "admin" { roles = { }; };
}
