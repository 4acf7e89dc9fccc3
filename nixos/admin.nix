# What a network's admin declares from Nix, and the one unit that applies
# it: the namespaces of the network's signed settings and the admin's
# aliases (entries of dns.aliases). services.<service>.networks.<n>.admin
# (agent.nix) declares these options and makes the unit; the clan service's
# admin role sets them (and asks for the settings to be created when the
# network is new), so both run the same script.
lib:
let
  inherit (lib) mkOption types;
  inherit (import ./types.nix lib)
    ed25519Key
    goDuration
    namespaceName
    relativeName
    aliasTarget
    rawEd25519
    ;
  q = lib.escapeShellArg;
in
rec {
  # The well-known namespaces (crdt/services.go): the services the agent
  # builds on the database take effect only once the settings declare them,
  # with these writers and policies.
  wellKnownNamespaces = {
    # The admin's DNS records, one entry per name and type.
    "dns.records" = {
      writers = "admin";
      policy = "lww";
    };
    # The admin's aliases (CNAME), one entry per name: two admins editing
    # different aliases both keep their edit.
    "dns.aliases" = {
      writers = "admin";
      policy = "lww";
    };
    # Each node's services, answered as SRV under its names.
    "dns.services" = {
      writers = "owner";
      policy = "lww";
    };
    # Each node's SSH host keys, written into known_hosts.
    "ssh.host-keys" = {
      writers = "owner";
      policy = "lww";
    };
  };

  # One namespace of the settings. Unset limits are dm-agent's defaults.
  namespaceModule = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Declare this namespace (or redeclare it, when its writers, policy
          or limits changed). false: leave it as the settings have it; a
          namespace is removed only by hand (`dm-agent settings
          --remove-namespace`), since that drops its entries everywhere.
        '';
      };
      writers = mkOption {
        type = types.enum [
          "admin"
          "members"
          "keys"
          "owner"
        ];
        description = "Who may write: the admin only; any admitted member; the listed `keys`; or each node in its own key-space (owner).";
      };
      policy = mkOption {
        type = types.enum [
          "lww"
          "fww"
          "gset"
          "orset"
          "log"
        ];
        description = "How concurrent writes merge: last writer wins, first (attested) writer wins, grow-only set, add/remove set, append-only log per writer.";
      };
      keys = mkOption {
        type = types.listOf ed25519Key;
        default = [ ];
        description = "The writers' node keys, with writers = \"keys\".";
      };
      maxValue = mkOption {
        type = types.nullOr (types.ints.between 1 65536);
        default = null;
        description = "The largest value in bytes; null: dm-agent's default (1024).";
      };
      maxEntriesPerWriter = mkOption {
        type = types.nullOr (types.ints.between 1 4096);
        default = null;
        description = "How many entries one writer may hold; null: dm-agent's default.";
      };
      lifetime = mkOption {
        type = types.nullOr goDuration;
        default = null;
        example = "720h";
        description = "How long an entry lives after it was written (whole seconds, at least 1m); null: as long as its writer may write. An orset needs one.";
      };
    };
  };

  # The defaults of a `namespaces` option: the well-known namespaces, each
  # value a default, so a definition changes one (or adds others) without
  # repeating the rest.
  namespaceDefaults = builtins.mapAttrs (_: builtins.mapAttrs (_: lib.mkDefault)) wellKnownNamespaces;

  namespacesOption = mkOption {
    type = types.attrsOf (types.submodule namespaceModule);
    default = { };
    example = lib.literalExpression ''{ "dns.services".lifetime = "720h"; "git.mirrors" = { writers = "owner"; policy = "lww"; }; }'';
    description = ''
      The namespaces the admin declares in the network's signed settings,
      by name (lower-case letters, digits, '-' and '.'). By default the
      four well-known ones: dns.records and dns.aliases (admin, lww),
      dns.services and ssh.host-keys (owner, lww). Applied with `dm-agent
      settings --namespace` once the agent has synced with the mesh.
    '';
  };

  aliasesOption = mkOption {
    type = types.attrsOf aliasTarget;
    default = { };
    example = {
      wiki = "gate";
      www = "example.org.";
    };
    description = ''
      The admin's aliases: name → target, each a CNAME under the network's
      domain, each its own entry of dns.aliases (`dm-agent data put
      dns.aliases NAME TARGET --admin-key …`), so aliases other admins
      write stay as they are. An alias removed from here is deleted, if it
      still points where this machine put it.
    '';
  };

  # "NAME writers=W policy=P [keys=K,…] [max-value=N] [max-entries=N]
  # [lifetime=D]", as `dm-agent settings --namespace` reads it.
  namespaceSpec =
    name: ns:
    lib.concatStringsSep " " (
      [
        name
        "writers=${ns.writers}"
        "policy=${ns.policy}"
      ]
      ++ lib.optional (ns.keys != [ ]) "keys=${lib.concatMapStringsSep "," rawEd25519 ns.keys}"
      ++ lib.optional (ns.maxValue != null) "max-value=${toString ns.maxValue}"
      ++ lib.optional (ns.maxEntriesPerWriter != null) "max-entries=${toString ns.maxEntriesPerWriter}"
      ++ lib.optional (ns.lifetime != null) "lifetime=${ns.lifetime}"
    );

  # The declared (enabled) namespaces' specs, sorted by name.
  namespaceSpecs = namespaces: lib.mapAttrsToList namespaceSpec (lib.filterAttrs (_: ns: ns.enable) namespaces);

  # What the evaluation can tell about the admin's options before a unit
  # fails on them (dm-agent checks the rest).
  assertions =
    where: admin:
    lib.mapAttrsToList (name: _: {
      assertion = namespaceName.check name;
      message = "${where}.namespaces: \"${name}\" is not a namespace name (lower-case letters, digits, '-' and '.', not first; at most 64).";
    }) admin.namespaces
    ++ lib.mapAttrsToList (name: ns: {
      assertion = !ns.enable || (ns.writers == "keys") == (ns.keys != [ ]);
      message = "${where}.namespaces.\"${name}\": keys go with writers = \"keys\", and writers = \"keys\" needs keys.";
    }) admin.namespaces
    ++ lib.mapAttrsToList (name: _: {
      assertion = relativeName.check name;
      message = "${where}.aliases: \"${name}\" is not a name relative to the domain (lower-case labels such as \"wiki\").";
    }) admin.aliases;

  # The admin's unit for network `label`: waits for the agent and for it to
  # have synced with the mesh (an edit of a stale copy would replace newer
  # settings everywhere; dm-agent refuses it, and this unit never forces),
  # then declares the namespaces and edits (witnesses, host TTL) with
  # `dm-agent settings`, then writes the aliases. When the agent has no
  # settings for the network, it fails (and retries a minute later) unless
  # `create` is set: then it creates them, once (see the clan service).
  #   dm        the dm-agent program
  #   jq        the jq program
  #   label     the network's label in config.json
  #   domain    its DNS domain
  #   admin     the network's admin options (keyFile, namespaces, aliases)
  #   edits     more `dm-agent settings` edits (--witness …, --host-ttl …),
  #             also given to `dm-agent network create`
  #   create    whether to create the settings of a new network
  unit =
    {
      dm,
      jq,
      label,
      domain,
      admin,
      edits ? [ ],
      create ? false,
    }:
    let
      net = "--network ${q label}";
      key = ''--admin-key "$CREDENTIALS_DIRECTORY/network-key"'';
      nsArgs = map (s: "--namespace ${q s}") (namespaceSpecs admin.namespaces);
      editArgs = lib.concatStringsSep " " (edits ++ nsArgs);
      createArgs = lib.concatStringsSep " " edits;
      created = ''"$STATE_DIRECTORY"/${q "${label}.created"}'';
      fresh = ''"$STATE_DIRECTORY"/${q "${label}.new.json"}'';
      aliasFile = ''"$STATE_DIRECTORY"/${q "${label}.aliases"}'';
      aliasNames = lib.attrNames admin.aliases;
      ns = "dns.aliases";
      # When the agent has no settings for the network (and this machine
      # never made them).
      noSettings =
        if !create then
          ''
            echo ${q "network ${domain}: the agent has no settings for it yet: create them (dm-agent network create --publish) or let it sync with the mesh; trying again in a minute"} >&2
            exit 1
          ''
        else if nsArgs == [ ] then
          ''
            ${dm} network create --domain ${q domain} ${key} --publish ${createArgs}
            touch "$created"
            new=1
          ''
        else
          # Created and declared in one signed record: signed to a file,
          # then handed to the agent with the namespaces (an agent that
          # has no settings yet takes them without having synced).
          ''
            rm -f ${fresh}
            ${dm} network create --domain ${q domain} ${key} --out ${fresh} ${createArgs}
            ${dm} settings ${net} ${key} --from ${fresh} ${lib.concatStringsSep " " nsArgs}
            rm -f ${fresh}
            touch "$created"
            new=1
          '';
      keep = lib.optionalString (aliasNames != [ ]) "case $name in ${lib.concatMapStringsSep "|" q aliasNames}) continue ;; esac";
      puts = lib.concatStringsSep "\n" (lib.mapAttrsToList (name: target: "alias_put ${q name} ${q target}") admin.aliases);
    in
    {
      description = "Publish the settings of data-mesher network ${domain}";
      wantedBy = [ "multi-user.target" ];
      after = [ "data-mesher.service" ];
      # Restarted with the agent: its edits wait for the agent to sync.
      requires = [ "data-mesher.service" ];
      serviceConfig = {
        Type = "oneshot";
        # Active after a success, so that a changed script (a new alias)
        # runs again when the system switches.
        RemainAfterExit = true;
        LoadCredential = "network-key:${admin.keyFile}";
        StateDirectory = "data-mesher-admin";
        Restart = "on-failure";
        RestartSec = "1min";
      };
      script = ''
        created=${created}
        for _ in $(seq 60); do
          ${dm} status >/dev/null 2>&1 && break
          sleep 1
        done
        has_settings() { ${dm} settings ${net} --show >/dev/null 2>&1; }
        synced() { ${dm} status --json 2>/dev/null | ${jq} -e .synced >/dev/null; }
        # Edits start from the mesh's newest settings: wait until the agent
        # has synced with a peer. dm-agent settings refuses an edit before
        # that (no --force here); the unit then fails and tries again a
        # minute later. An edit that changes nothing publishes nothing,
        # synced or not.
        for _ in $(seq 300); do
          if synced; then break; fi
          sleep 1
        done
        new=
        if has_settings; then
          ${if editArgs == "" then ":" else "${dm} settings ${net} ${key} ${editArgs}"}
        elif [ -e "$created" ]; then
          echo ${q "network ${domain}: this machine created its settings before, but the agent has not synced them yet; not creating new ones"} >&2
          exit 1
        else
          ${lib.replaceStrings [ "\n" ] [ "\n  " ] (lib.removeSuffix "\n" noSettings)}
        fi

        # The aliases: each its own entry, written only when it differs
        # from the mesh's, and only from a synced agent (or on the settings
        # just created), since a write wins over any older one.
        aliases=${aliasFile}
        if ${if aliasNames == [ ] then ''[ -s "$aliases" ]'' else "true"}; then
          if [ -z "$new" ] && ! synced; then
            echo ${q "network ${domain}: the agent has not synced with the mesh since it started; the aliases wait (trying again in a minute)"} >&2
            exit 1
          fi
          alias_get() { ${dm} data get ${net} ${ns} "$1" 2>/dev/null; }
          # Aliases this machine wrote before and no longer declares go,
          # unless someone has changed them since.
          if [ -e "$aliases" ]; then
            while read -r name target; do
              ${keep}
              if [ "$(alias_get "$name")" = "$target" ]; then
                ${dm} data delete ${net} ${ns} "$name" ${key}
              fi
            done < "$aliases"
          fi
          : > "$aliases.new"
          alias_put() {
            if [ "$(alias_get "$1")" != "$2" ]; then
              ${dm} data put ${net} ${ns} "$1" "$2" ${key}
            fi
            printf '%s %s\n' "$1" "$2" >> "$aliases.new"
          }
          ${puts}
          mv "$aliases.new" "$aliases"
        fi
      '';
    };
}
