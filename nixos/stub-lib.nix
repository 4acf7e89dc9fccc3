# A stand-in for nixpkgs' lib and pkgs, just enough to evaluate agent.nix,
# clan-service.nix and flake.nix without nixpkgs (module-smoke.nix,
# clan-smoke.nix, flake-smoke.nix). mkIf and mkDefault/mkForce leave
# markers that evalModules below applies.
let
  lib = {
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkDefault = content: {
      _type = "override";
      priority = 1000;
      inherit content;
    };
    mkForce = content: {
      _type = "override";
      priority = 50;
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
    optionalAttrs = c: set: if c then set else { };
    inherit (builtins)
      any
      filter
      elem
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
    stdenv.hostPlatform.system = "x86_64-linux";
    # The script's text after a marker line, so tests can read it.
    writeShellScript = name: text: "/nix/store/00000000000000000000000000000000-${name}\n${text}";
    data-mesher = "/nix/store/00000000000000000000000000000000-data-mesher";
  };
  # A small module system for the smoke tests: imports flattened and
  # deduplicated by key (or file); mkIf of an attribute set applied to each
  # attribute, as nixpkgs does; definitions merged as nixpkgs merges
  # them for the options involved (attribute sets attribute by attribute,
  # lists concatenated, equal values once, the higher priority alone,
  # anything else a conflict); `config` is the fixpoint. Declarations only
  # mark where options are and must be unique; types and defaults are not
  # applied.
  evalModules =
    modules:
    let
      args = { inherit config lib pkgs; };
      load =
        m:
        let
          v = if builtins.isPath m then import m else m;
        in
        if builtins.isFunction v then v args else v;
      collect =
        state: m:
        let
          a = load m;
          # As in nixpkgs, a module's key is its own or its file's.
          key = a.key or (if builtins.isPath m then toString m else null);
        in
        if key != null && builtins.elem key state.keys then
          state
        else
          builtins.foldl' collect {
            keys = state.keys ++ (if key == null then [ ] else [ key ]);
            decls = state.decls ++ optionPaths "" (a.options or { });
            defs =
              state.defs
              ++ [
                (
                  if a ? config then
                    a.config
                  else
                    removeAttrs a [
                      "imports"
                      "options"
                      "key"
                      "_file"
                    ]
                )
              ];
          } (a.imports or [ ]);
      all = builtins.foldl' collect {
        keys = [ ];
        decls = [ ];
        defs = [ ];
      } modules;
      # As in nixpkgs, an option is declared once: a module imported twice
      # without a key declares its options twice.
      twice = builtins.filter (
        p: builtins.length (builtins.filter (q: q == p) all.decls) > 1
      ) all.decls;
      opts = builtins.listToAttrs (map (p: lib.nameValuePair "config${p}" true) all.decls);
      config =
        if twice != [ ] then
          throw "options declared more than once: ${toString twice}"
        else
          merge opts false "config" all.defs;
    in
    (
      let
        r = prune config;
      in
      if isType "absent" r then { } else r
    );

  # What only false mkIfs defined is absent: inside the fixpoint it is a
  # marker (attribute names cannot wait for conditions that read config),
  # in the result it is gone, and so is a set of nothing but such.
  absent = {
    _type = "absent";
  };
  prune =
    v:
    if plain v then
      (
        let
          kept = lib.filterAttrs (_: x: !(isType "absent" x)) (builtins.mapAttrs (_: prune) v);
        in
        if kept == { } then absent else kept
      )
    else if builtins.isList v then
      map prune v
    else
      v;

  optionPaths =
    prefix: o:
    if isType "option" o then
      [ prefix ]
    else if builtins.isAttrs o then
      builtins.concatMap (n: optionPaths "${prefix}.${n}" o.${n}) (builtins.attrNames o)
    else
      [ ];
  isType = t: v: builtins.isAttrs v && (v._type or null) == t;
  # A non-empty attribute set that merges attribute by attribute; a
  # derivation is a value of its own.
  plain = v: builtins.isAttrs v && !(v ? _type) && v != { } && (v.type or null) != "derivation";
  # mkIf of an attribute set applies to each attribute. An override
  # (mkDefault, mkForce) of an attribute set stays whole, as it does for an
  # option's value; nixpkgs also pushes overrides down through the option
  # tree above options, which the modules tested here do not rely on.
  push =
    d:
    if isType "if" d then
      let
        c = push d.content;
      in
      if plain c then builtins.mapAttrs (_: v: d // { content = v; }) c else d // { content = c; }
    else
      d;
  # A definition after push: null if a false mkIf, else priority and value.
  discharge =
    d:
    if isType "if" d then
      (if d.condition then discharge d.content else null)
    else if isType "override" d then
      (
        let
          c = discharge d.content;
        in
        if c == null then null else c // { priority = d.priority; }
      )
    else
      {
        priority = 100;
        value = d;
      };
  # opts: the declared options' paths. Above an option, a mkIf applies to
  # each attribute before its condition is decided, so that `config` can
  # be read while it is being defined; at an option and within its value,
  # conditions are decided first, as in nixpkgs.
  merge =
    opts: inValue: path: defs:
    let
      here = inValue || opts ? ${path};
      pushed = if here then defs else map push defs;
      attrsets = builtins.filter plain pushed;
      zip = vs: builtins.zipAttrsWith (n: merge opts here "${path}.${n}") vs;
    in
    if !here && attrsets != [ ] && builtins.length attrsets == builtins.length pushed then
      zip attrsets
    else
      let
        live = builtins.filter (d: d != null) (map discharge pushed);
        top = builtins.foldl' (p: d: if d.priority < p then d.priority else p) 1000000 live;
        vals = map (d: d.value) (builtins.filter (d: d.priority == top) live);
        first = builtins.head vals;
      in
      if vals == [ ] then
        absent
      else if builtins.all builtins.isList vals then
        builtins.concatLists vals
      else if builtins.all (v: v == { } || plain v) vals then
        (
          let
            nonEmpty = builtins.filter (v: v != { }) vals;
          in
          if nonEmpty == [ ] then { } else zip nonEmpty
        )
      else if builtins.length vals == 1 then
        first
      # A package, like nixpkgs' types.package, is unique: two definitions
      # at one priority are an error even when equal.
      else if builtins.any (v: (v.type or null) == "derivation") vals then
        throw "${path}: a package defined ${toString (builtins.length vals)} times"
      else if builtins.all (v: v == first) vals then
        first
      else
        throw "${path}: conflicting definitions: ${
          toString (map (v: if builtins.isAttrs v || builtins.isFunction v then builtins.typeOf v else builtins.toJSON v) vals)
        }";
in
{
  inherit
    lib
    pkgs
    evalModules
    ;
}
