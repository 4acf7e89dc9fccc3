# Evaluates agent.nix (module.nix, or dm-agent.nix with service = "dm-agent")
# without nixpkgs: a stub lib and pkgs, the small module system of
# stub-lib.nix, and the example's options (example.nix) as nixpkgs' module
# system would fill them in. It checks the module's own logic (what its
# config section produces for given options), not option types or
# defaults, which need nixpkgs. agent/nixos_test.go evaluates it:
#   nix-instantiate --eval --strict --json --expr 'import ./nixos/module-smoke.nix { }'
{
  service ? "data-mesher",
  # clan-core's own data-mesher module, declared and enabled.
  upstream ? false,
  wireguard ? true,
  # networking.wireguard with its networkd backend.
  networkd ? false,
  keyFile ? null,
  splitDNS ? true,
}:
let
  inherit (import ./stub-lib.nix)
    lib
    pkgs
    evalModules
    ;
  example = import ./example.nix;
  cfg = example // {
    package = pkgs.data-mesher;
    inherit keyFile splitDNS;
    settings = { };
    networks = builtins.mapAttrs (name: n: n // { domain = name; }) example.networks;
  };
  # The stand-in deployment: the example's options (as the module system
  # fills them in), what else the module reads, and a user's `settings`.
  deployment = settings: {
    services = {
      ${service} = cfg // {
        inherit settings;
      };
      resolved.enable = splitDNS;
    }
    // (if upstream then { data-mesher.enable = true; } else { });
    networking.hostName = "mors";
    networking.wireguard = {
      enable = wireguard;
      useNetworkd = networkd;
      interfaces = if wireguard then { wg0 = { }; } else { };
    };
  };
  evaluate = settings: evalModules [
    (import ./agent.nix service)
    (deployment settings)
  ];
  config = evaluate { };
  # The module itself, for its declarations and its raw definitions.
  module = import ./agent.nix service {
    inherit config lib pkgs;
  };
  opts = module.options.services.${service};
  networkOpts = (opts.networks.type.attrsOf.submodule { name = "example"; }).options;
  undocumented =
    prefix: set:
    builtins.concatMap (
      n:
      let
        o = set.${n};
      in
      if o ? _type then
        (if o ? description && o.description != "" then [ ] else [ "${prefix}.${n}" ])
      else
        undocumented "${prefix}.${n}" o
    ) (builtins.attrNames set);
  # Paths of rendered settings that are not mkDefault leaves (a user's
  # `settings` value must replace only the leaf it names).
  notDefault =
    prefix: v:
    if builtins.isAttrs v && (v._type or null) == "override" then
      (if builtins.isAttrs v.content && v.content != { } then [ prefix ] else [ ])
    else if builtins.isAttrs v && !(v ? _type) then
      builtins.concatMap (n: notDefault "${prefix}.${n}" v.${n}) (builtins.attrNames v)
    else
      [ prefix ];
in
{
  inherit config;
  # Declared option names, to check that the documented configuration
  # uses only options that exist.
  options = builtins.attrNames opts;
  networkOptions = builtins.attrNames networkOpts;
  # Every option, nested ones too, has a description.
  undocumented = undocumented "services.${service}" opts ++ undocumented "networks.<name>" networkOpts;
  settingsNotDefault = notDefault "settings" module.config.content.services.${service}.settings;
  # The module merged with a user's `settings`: the user's values replace
  # only the leaves they name.
  userSettings =
    (evaluate {
      dns.forwarders = [ "9.9.9.9:53" ];
      log.level = "debug";
    }).services.${service}.settings;
}
