# Evaluates the agent's NixOS module (nixos/agent.nix, as module.nix or
# dm-agent.nix) with nixpkgs' lib (lib.evalModules), the typed NixOS
# options of nixos-options.nix and the stand-in pkgs, for a machine called
# "mors", and reports what the Go tests check (nixos/nix_test.go):
#   nix-instantiate --eval --strict --json --store dummy:// --expr \
#     'import ./testdata/module.nix { lib = import LIB; config = { … }; }'
{
  lib,
  # What the machine's configuration says (a NixOS module).
  config ? { },
  service ? "data-mesher",
  # The module's files: module.nix or dm-agent.nix, or the flake's modules.
  modules ? [ (if service == "data-mesher" then ../module.nix else ../dm-agent.nix) ],
  # Evaluate beside clan-core's own data-mesher (it declares
  # services.data-mesher.enable).
  clanDataMesher ? false,
  # Set the package to the stand-in (the flake's modules set their own).
  setPackage ? true,
  # Fail as building the system would when an assertion fails.
  checkAssertions ? false,
}:
let
  pkgs = import ./pkgs.nix { inherit lib; };
  eval = lib.evalModules {
    modules = [
      ./nixos-options.nix
      {
        _module.args.pkgs = pkgs;
        networking.hostName = lib.mkDefault "mors";
      }
      config
    ]
    ++ lib.optional setPackage { services.${service}.package = pkgs.data-mesher; }
    ++ lib.optional clanDataMesher {
      options.services.data-mesher.enable = lib.mkEnableOption "clan-core's data-mesher";
      config.services.data-mesher.enable = true;
    }
    ++ modules;
  };
  c = eval.config;
  cfg = c.services.${service};
  unit = c.systemd.services.data-mesher or null;
  # Every option of the module, nested ones too (networks.<name>.pubkey).
  docs = builtins.filter (o: o.visible && !o.internal) (lib.optionAttrSetToDocList eval.options.services.${service});
  enabled = cfg.enable;
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
in
if checkAssertions && failed != [ ] then
  throw "\nFailed assertions:\n${lib.concatMapStringsSep "\n" (m: "- ${m}") failed}"
else
{
  options = map (o: lib.removePrefix "services.${service}." o.name) docs;
  undocumented = map (o: o.name) (builtins.filter (o: (o.description or null) == null || o.description == "") docs);
  failedAssertions = failed;
  inherit (c) warnings;
  settings = if enabled then cfg.settings else null;
  configFile =
    if enabled then
      {
        inherit (c.environment.etc."data-mesher/config.json") mode;
        inherit (c.environment.etc."data-mesher/config.json".source) name text;
      }
    else
      null;
  unit =
    if unit == null then
      null
    else
      {
        inherit (unit)
          description
          wantedBy
          wants
          after
          bindsTo
          serviceConfig
          ;
        reloadTriggers = map toString unit.reloadTriggers;
      };
  # Every unit but the agent's (the admins' units).
  units = lib.mapAttrs (_: u: {
    inherit (u)
      description
      script
      after
      requires
      wantedBy
      serviceConfig
      ;
  }) (removeAttrs c.systemd.services [ "data-mesher" ]);
  users = lib.mapAttrs (_: u: { inherit (u) isSystemUser group; }) c.users.users;
  groups = lib.attrNames c.users.groups;
  knownHostsFiles = map toString c.programs.ssh.knownHostsFiles;
  firewall = c.networking.firewall.interfaces;
  systemPackages = map (p: p.name) c.environment.systemPackages;
  package = if enabled then { inherit (cfg.package) name; } else null;
}
