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
        # go.mod needs Go 1.26; the sandbox cannot download a toolchain.
        data-mesher = (
          if pkgs ? buildGo126Module then
            pkgs.buildGo126Module
          else if pkgs ? go_1_26 then
            pkgs.buildGoModule.override { go = pkgs.go_1_26; }
          else
            pkgs.buildGoModule
        ) {
          pname = "data-mesher";
          inherit version;
          src = self;
          # NAR hash of the `go mod vendor` tree (Go 1.26). Recompute after
          # any go.sum change; a Nix build that disagrees prints the right value.
          vendorHash = "sha256-xUyQXvlq1LzTRiX0zuviSaySbao5UMjG+QMm/bYfn3Q=";
          subPackages = [ "cmd/dm-agent" ];
          ldflags = [
            "-s"
            "-w"
            "-X github.com/data-mesher/data-mesher/agent.Version=${version}"
          ];
          # The unit and property tests; the end-to-end suite needs root.
          checkFlags = [ "-short" ];
          # The man pages and the shell completions, made by dm-agent from
          # the same definitions as its --help (man pages are compressed
          # by the fixup phase).
          postInstall = ''
            mkdir -p $out/share/man/man1 $out/share/bash-completion/completions \
              $out/share/zsh/site-functions $out/share/fish/vendor_completions.d
            $out/bin/dm-agent man $out/share/man/man1
            $out/bin/dm-agent completion bash > $out/share/bash-completion/completions/dm-agent.bash
            $out/bin/dm-agent completion zsh > $out/share/zsh/site-functions/_dm-agent
            $out/bin/dm-agent completion fish > $out/share/fish/vendor_completions.d/dm-agent.fish
          '';
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

      # Each module sets the package to this flake's and leaves nixpkgs'
      # `pkgs` alone (no overlay), so it also works where pkgs is read-only
      # (nixpkgs.pkgs, runNixOSTest). The key makes a module listed twice
      # count once.
      nixosModules =
        let
          withPackage = name: service: file: {
            key = "data-mesher#nixosModules.${name}";
            imports = [
              file
              (
                { pkgs, lib, ... }:
                {
                  services.${service}.package =
                    lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.data-mesher;
                }
              )
            ];
          };
        in
        rec {
          # services.data-mesher, for NixOS machines.
          data-mesher = withPackage "data-mesher" "data-mesher" ./nixos/module.nix;
          default = data-mesher;
          # services.dm-agent, for clan machines (clan-core declares
          # services.data-mesher for its own data-mesher).
          dm-agent = withPackage "dm-agent" "dm-agent" ./nixos/dm-agent.nix;
        };

      # The clan-core service (clanServices format).
      clan.modules.dm-agent = import ./nixos/clan-service.nix { agentModule = self.nixosModules.dm-agent; };

      checks = forAll (pkgs: {
        vm = pkgs.testers.runNixOSTest (import ./nixos/test.nix { inherit self; });
      });
    };
}
