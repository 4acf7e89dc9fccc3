# Evaluates flake.nix's outputs with a stand-in for nixpkgs (no nixpkgs
# here) and reports how they are wired: the package's build arguments, what
# the NixOS modules define when imported (twice, as a machine might),
# the clan service, and the VM test's nodes. agent/nixos_test.go checks the
# report.
let
  inherit (import ./stub-lib.nix) lib pkgs evalModules;
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  genAttrs = names: f: lib.listToAttrs (map (n: lib.nameValuePair n (f n)) names);
  nixpkgs = {
    lib = {
      inherit genAttrs;
    };
    legacyPackages = genAttrs systems (system: {
      lib.platforms.linux = systems;
      stdenv.hostPlatform = { inherit system; };
      # The build helper's arguments stand for the package.
      buildGo126Module =
        args:
        args
        // {
          type = "derivation";
          outPath = "/nix/store/00000000000000000000000000000000-${args.pname}-${args.version}";
          builtWith = "buildGo126Module";
        };
      testers.runNixOSTest = test: { inherit test; };
    });
  };
  flake = import ../flake.nix;
  self = flake.outputs { inherit self nixpkgs; } // {
    outPath = toString ../.;
  };
  # A machine with the documented example (example.nix, as the module
  # system fills it in) that imports the module twice: what it defines, its
  # package (by name and builder), and the unit's command.
  example = import ./example.nix;
  machine =
    module: service:
    let
      config = evalModules [
        module
        module
        {
          services = {
            ${service} = example // {
              settings = { };
              splitDNS = false;
              networks = builtins.mapAttrs (name: n: n // { domain = name; }) example.networks;
            };
            resolved.enable = false;
          };
          networking.hostName = "mors";
          networking.wireguard = {
            enable = false;
            interfaces = { };
          };
        }
      ];
      p = config.services.${service}.package;
    in
    {
      defined = lib.mapAttrs (_: builtins.attrNames) (removeAttrs config [ "assertions" ]);
      package = {
        inherit (p) pname builtWith;
      };
      execStart = config.systemd.services.data-mesher.serviceConfig.ExecStart;
    };
  clan = self.clan.modules.dm-agent { };
in
{
  package = removeAttrs self.packages.x86_64-linux.data-mesher [
    "src"
    "type"
    "outPath"
  ];
  defaultIsPackage = self.packages.x86_64-linux.default == self.packages.x86_64-linux.data-mesher;
  nixosDefault = machine self.nixosModules.default "data-mesher";
  nixosDmAgent = machine self.nixosModules.dm-agent "dm-agent";
  defaultIsDataMesher = self.nixosModules.default == self.nixosModules.data-mesher;
  clanClass = clan._class;
  clanRoles = builtins.attrNames clan.roles;
  vm = {
    inherit (self.checks.x86_64-linux.vm.test) name;
    nodes = builtins.attrNames self.checks.x86_64-linux.vm.test.nodes;
  };
}
