# A stand-in for nixpkgs' lib and pkgs, just enough to evaluate module.nix
# and clan-service.nix without nixpkgs (module-smoke.nix, clan-smoke.nix).
# mkIf and mkDefault/mkForce leave markers that `resolve` applies.
let
  lib = {
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkDefault = content: {
      _type = "override";
      inherit content;
    };
    mkForce = content: {
      _type = "override";
      inherit content;
    };
    mkOption = o: { _type = "option"; } // o;
    mkEnableOption = description: {
      _type = "option";
      type = "bool";
      default = false;
      inherit description;
    };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    types = {
      str = "str";
      bool = "bool";
      port = "port";
      number = "number";
      package = "package";
      listOf = t: "listOf ${t}";
      attrsOf = t: { attrsOf = t; };
      nullOr = t: "nullOr ${t}";
      enum = vs: "enum";
      submodule = m: { submodule = m; };
    };
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    concatMapStringsSep = sep: f: xs: builtins.concatStringsSep sep (map f xs);
    attrValues = s: map (n: s.${n}) (builtins.attrNames s);
    mapAttrs = builtins.mapAttrs;
    attrNames = builtins.attrNames;
    filterAttrs = pred: set: removeAttrs set (builtins.filter (n: !pred n set.${n}) (builtins.attrNames set));
    mapAttrsToList = f: set: map (n: f n set.${n}) (builtins.attrNames set);
    mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
    nameValuePair = name: value: { inherit name value; };
    inherit (builtins)
      any
      head
      length
      listToAttrs
      concatMap
      ;
    unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
    # Printed on stderr, as nixpkgs does.
    warn = msg: v: builtins.trace "evaluation warning: ${msg}" v;
    escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
    strings.trim =
      s:
      let
        m = builtins.match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s;
      in
      if m == null then "" else builtins.head m;
  };
  pkgs = {
    formats.json = { }: {
      type = "json";
      generate = name: value: "/nix/store/00000000000000000000000000000000-${name}";
    };
    systemd = "/nix/store/00000000000000000000000000000000-systemd";
    coreutils = "/nix/store/00000000000000000000000000000000-coreutils";
    jq = "/nix/store/00000000000000000000000000000000-jq";
    # The script's text after a marker line, so tests can read it.
    writeShellScript = name: text: "/nix/store/00000000000000000000000000000000-${name}\n${text}";
    data-mesher = "/nix/store/00000000000000000000000000000000-data-mesher";
  };
  # Applies mkIf (false: null) and drops mkDefault/mkForce wrappers.
  resolve =
    v:
    if builtins.isAttrs v && v ? _type && v._type == "if" then
      (if v.condition then resolve v.content else null)
    else if builtins.isAttrs v && v ? _type && v._type == "override" then
      resolve v.content
    else if builtins.isAttrs v then
      builtins.mapAttrs (_: resolve) v
    else if builtins.isList v then
      map resolve v
    else
      v;
in
{
  inherit lib pkgs resolve;
}
