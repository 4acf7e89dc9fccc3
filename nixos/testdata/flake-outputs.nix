# Evaluates flake.nix's outputs with nixpkgs' lib and a stand-in for the
# rest of nixpkgs (no nixpkgs here), and reports how they are wired: the
# package's build arguments, what the NixOS modules define when imported
# twice (as a machine might), the clan service, and the VM test of `nix
# flake check`: each of its nodes evaluated as a NixOS machine with the
# typed options of nixos-options.nix, everything short of building it.
# nixos/flake_test.go checks the report.
{ lib }:
let
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  pkgsFor =
    system:
    import ./pkgs.nix { inherit lib system; }
    // {
      lib = lib // {
        platforms.linux = systems;
      };
      # The build helper's arguments stand for the package.
      buildGo126Module =
        args:
        args
        // {
          type = "derivation";
          name = "${args.pname}-${args.version}";
          outPath = "/nix/store/00000000000000000000000000000000-${args.pname}-${args.version}";
          builtWith = "buildGo126Module";
        };
      # What runNixOSTest gets; the nodes are evaluated below.
      testers.runNixOSTest = test: { inherit test; };
    };
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs systems pkgsFor;
  };
  flake = import ../../flake.nix;
  self = flake.outputs { inherit self nixpkgs; } // {
    outPath = toString ../..;
  };
  pkgs = nixpkgs.legacyPackages.x86_64-linux;

  nixos =
    modules:
    (lib.evalModules {
      class = "nixos";
      modules = [
        ./nixos-options.nix
        { _module.args.pkgs = pkgs; }
      ]
      ++ modules;
    }).config;

  # A machine with the README's example that imports the module twice:
  # its package (by name and builder) and the unit's command. (A module
  # that set nixpkgs.overlays or nixpkgs.pkgs would fail here: nixpkgs.*
  # is not declared.)
  machine =
    module: service:
    let
      config = nixos [
        module
        module
        (import ./example.nix service)
        { networking.hostName = "mors"; }
      ];
      p = config.services.${service}.package;
    in
    {
      package = {
        inherit (p) pname builtWith;
      };
      execStart = config.systemd.services.data-mesher.serviceConfig.ExecStart;
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    };
  vm = self.checks.x86_64-linux.vm.test;
  # test.nix as `nix flake check` builds it, with the keys folder as a
  # string (the dummy store cannot copy it).
  vmTest = import ../test.nix {
    inherit self;
    keys = toString ../test-keys;
  };
  node =
    name:
    let
      config = nixos [ vmTest.nodes.${name} ];
      unit = config.systemd.services.data-mesher;
    in
    {
      inherit (config.networking) hostName;
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
      inherit (config) warnings;
      configFile = config.environment.etc."data-mesher/config.json".source.text;
      wireguard = lib.mapAttrs (_: i: {
        inherit (i) ips listenPort privateKeyFile;
        peers = map (p: { inherit (p) publicKey allowedIPs endpoint; }) i.peers;
      }) config.networking.wireguard.interfaces;
      unit = {
        inherit (unit) after bindsTo wantedBy;
        execStartPost = unit.serviceConfig.ExecStartPost;
      };
      resolved = config.services.resolved.enable;
      firewall = config.networking.firewall.interfaces;
      udpPorts = config.networking.firewall.allowedUDPPorts;
      etc = lib.attrNames config.environment.etc;
      units = lib.attrNames (removeAttrs config.systemd.services [ "data-mesher" ]);
      knownHostsFiles = map toString config.programs.ssh.knownHostsFiles;
      packages = map (p: p.name) config.environment.systemPackages;
    };
in
{
  package = removeAttrs self.packages.x86_64-linux.data-mesher [
    "src"
    "type"
    "outPath"
  ];
  defaultIsPackage = self.packages.x86_64-linux.default == self.packages.x86_64-linux.data-mesher;
  overlay = (self.overlays.default pkgs pkgs).data-mesher.name;
  nixosDefault = machine self.nixosModules.default "data-mesher";
  nixosDmAgent = machine self.nixosModules.dm-agent "dm-agent";
  defaultIsDataMesher = self.nixosModules.default == self.nixosModules.data-mesher;
  clanClass = (self.clan.modules.dm-agent {
    clanLib = { };
    inherit lib;
  })._class;
  vm = {
    inherit (vm) name testScript;
    nodes = lib.mapAttrs (name: _: node name) vm.nodes;
    # The flake's check is this file with its keys folder.
    sameAsFlake = lib.attrNames vm.nodes == lib.attrNames vmTest.nodes && vm.testScript == vmTest.testScript;
  };
}
