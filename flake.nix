{
  description = "data-mesher: names for a WireGuard mesh without a central DNS server";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      version = "0.1.0";
    in
    {
      packages = forAll (pkgs: rec {
        data-mesher = (pkgs.buildGo126Module or pkgs.buildGoModule) {
          pname = "data-mesher";
          inherit version;
          src = self;
          # NAR hash of the `go mod vendor` tree (Go 1.26). Recompute after
          # any go.sum change; a Nix build that disagrees prints the right value.
          vendorHash = "sha256-WlvxeXK4Y60I8vTSZM09w+Cm0iU8Y4uW6HPIPDrgIkE=";
          subPackages = [ "cmd/dm-agent" ];
          ldflags = [
            "-s"
            "-w"
            "-X github.com/data-mesher/data-mesher/agent.Version=${version}"
          ];
          # The unit and property tests; the end-to-end suite needs root.
          checkFlags = [ "-short" ];
          meta = {
            description = "Names for a WireGuard mesh without a central DNS server";
            mainProgram = "dm-agent";
            platforms = pkgs.lib.platforms.linux;
          };
        };
        default = data-mesher;
      });

      overlays.default = final: _prev: {
        data-mesher = self.packages.${final.stdenv.hostPlatform.system}.data-mesher;
      };

      nixosModules.default = {
        imports = [ ./nixos/module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      # The clan-core service (clanServices format).
      clan.modules.data-mesher = ./nixos/clan-service.nix;

      checks = forAll (pkgs: {
        vm = pkgs.testers.runNixOSTest (import ./nixos/test.nix { inherit self; });
      });
    };
}
