# The agent's NixOS module, under services.<service>. Two instances exist:
#   module.nix    services.data-mesher, for NixOS machines
#   dm-agent.nix  services.dm-agent, for clan machines: clan-core imports its
#                 own data-mesher module (a different program), which already
#                 declares services.data-mesher
# The configuration users already write works as it is:
#
#   services.data-mesher = {
#     enable = true;
#     interface = "wg0";
#     openFirewall = true;
#     networks."qubasa.clan" = {
#       pubkey = "ssh-ed25519 AAAA…";
#       priority = 1;
#       bootstrapPeers = [ "http://[fd27:…]:7331" ];
#     };
#   };
#
# Besides names, other NixOS modules publish this machine's entries in the
# networks' namespaces (publish, services → SRV, the SSH host keys), and an
# admin's machine declares namespaces and aliases (networks.<n>.admin, the
# unit of admin.nix). Other services read what the agent writes for them
# (dns.json, the files view) with its group: SupplementaryGroups =
# [ "data-mesher" ].
service:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkEnableOption
    mkIf
    mkOption
    types
    literalExpression
    ;
  cfg = config.services.${service};
  opt = "services.${service}";
  format = pkgs.formats.json { };
  # networking.wireguard's scripted backend brings the interface up in
  # wireguard-<if>.service; its networkd backend (nixpkgs 25.05 on) has no
  # such unit. Either way the agent waits for the interface and its address.
  wg = config.networking.wireguard;
  wgNetworkd = wg.useNetworkd or false;
  wgUnit = "wireguard-${cfg.interface}.service";
  wgDeclared = wg.enable && !wgNetworkd && builtins.hasAttr cfg.interface wg.interfaces;
  # Split DNS: systemd-resolved sends the networks' domains to the agent's
  # DNS on the tunnel address. (Not a loopback address: resolved sends a
  # link's queries with IP_UNICAST_IF set to that link, and the kernel then
  # never delivers them to 127.0.0.0/8; the link's own address works.) The
  # address is the agent's, read from `dm-agent status` once it runs.
  resolvedSetup =
    let
      q = lib.escapeShellArg;
      domains = lib.concatMapStringsSep " " (n: q "~${n.domain}") (lib.attrValues cfg.networks);
    in
    pkgs.writeShellScript "data-mesher-resolved" ''
      set -eu
      for _ in $(${q "${pkgs.coreutils}/bin/seq"} 30); do
        bind=$(${q "${cfg.package}/bin/dm-agent"} status --json 2>/dev/null | ${q "${pkgs.jq}/bin/jq"} -er .bind) && break
        ${q "${pkgs.coreutils}/bin/sleep"} 1
      done
      if [ -z "''${bind:-}" ]; then
        # Not fatal: the agent still answers on the tunnel address.
        echo ${q "data-mesher: the agent does not answer dm-agent status; no split DNS on ${cfg.interface}"} >&2
        exit 0
      fi
      port=${q (toString cfg.ports.dns)}
      case $bind in
        *:*) server="[$bind]:$port" ;;
        *) server="$bind:$port" ;;
      esac
      resolvectl=${q "${pkgs.systemd}/bin/resolvectl"}
      "$resolvectl" dns ${q cfg.interface} "$server"
      "$resolvectl" domain ${q cfg.interface} ${domains}
      "$resolvectl" default-route ${q cfg.interface} false
    '';
  # What the options render, each leaf a default: a value set in `settings`
  # replaces just that leaf (settings.dns.forwarders keeps dns.listen).
  defaultLeaves = v: if builtins.isAttrs v then builtins.mapAttrs (_: defaultLeaves) v else lib.mkDefault v;

  inherit (import ./types.nix lib)
    interfaceName
    ed25519Key
    domainName
    namespaceName
    serviceName
    goDuration
    ;
  adminLib = import ./admin.nix lib;

  # The agent's user and group: static, so that other services can be
  # given the group (SupplementaryGroups) to read what the agent writes
  # for them (dns.json, the files view), and so that the state directory
  # is /var/lib/data-mesher itself (DynamicUser's sits under
  # /var/lib/private, 0700, where nobody else reaches it).
  user = "data-mesher";
  group = "data-mesher";
  stateDir = "/var/lib/data-mesher";

  # An entry this machine keeps written in a namespace.
  publishModule = {
    options = {
      namespace = mkOption {
        type = namespaceName;
        example = "dns.services";
        description = "The namespace the entry goes in (the network's settings must declare it).";
      };
      key = mkOption {
        type = types.nonEmptyStr;
        example = "_ssh._tcp";
        description = "The entry's key.";
      };
      value = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "0 0 22";
        description = "The value. Set this or valueFile.";
      };
      valueFile = mkOption {
        type = types.nullOr (types.strMatching "/.*");
        default = null;
        example = "/etc/ssh/ssh_host_ed25519_key.pub";
        description = "A file whose content is the value, read by the agent at run time (every 30 s and on reload), so another service can write it. Set this or value.";
      };
    };
  };
  publishOption =
    where:
    mkOption {
      type = types.listOf (types.submodule publishModule);
      default = [ ];
      example = lib.literalExpression ''[ { namespace = "git.mirrors"; key = "repos"; valueFile = "/var/lib/gitea/mirrors.txt"; } ]'';
      description = ''
        Entries this machine keeps written ${where}: the agent writes each
        when it is missing or changed, and again before its namespace's
        lifetime runs out. An entry removed from here stays until it
        decays (`dm-agent data delete` removes it at once).
      '';
    };

  # A service of this machine, answered as SRV under each of its names.
  serviceModule = {
    options = {
      port = mkOption {
        type = types.port;
        example = 22;
        description = "The service's port.";
      };
      protocol = mkOption {
        type = types.enum [
          "tcp"
          "udp"
        ];
        default = "tcp";
        description = "The service's protocol.";
      };
      priority = mkOption {
        type = types.ints.u16;
        default = 0;
        description = "The SRV priority (lower is tried first).";
      };
      weight = mkOption {
        type = types.ints.u16;
        default = 0;
        description = "The SRV weight among records of one priority.";
      };
    };
  };
  servicesOption =
    where:
    mkOption {
      type = types.attrsOf (types.submodule serviceModule);
      default = { };
      example = lib.literalExpression "{ ssh.port = 22; git = { port = 9418; priority = 10; }; }";
      description = ''
        Services of this machine ${where}, by name: each an entry of
        dns.services (key `_<name>._<protocol>`, value `<priority>
        <weight> <port>`), which the agent answers as SRV under each name
        the machine holds (`_ssh._tcp.mors.clan SRV 0 0 22 mors.clan.`).
      '';
    };

  networkModule =
    { name, ... }:
    {
      options = {
        pubkey = mkOption {
          type = ed25519Key;
          example = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY";
          description = "The network's admin key: its identity. Only settings it signs count.";
        };
        priority = mkOption {
          type = types.number;
          default = 1;
          example = 1.5;
          description = "When two joined networks give the same name, the lower priority wins (a float: 1.5 sits between 1 and 2).";
        };
        bootstrapPeers = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "http://[fd27:bb88:dbef:737b:3799:9318:aa77:ec12]:7331" ];
          description = "Where a new node first gets the network's records: peers' endpoints or any static data.json.";
        };
        hostnames = mkOption {
          type = types.nullOr (types.listOf types.str);
          default = null;
          description = "Names to claim in this network; null: ${opt}.hostnames.";
        };
        domain = mkOption {
          type = domainName;
          default = name;
          defaultText = literalExpression "<name>";
          description = "The network's DNS domain, for split DNS. The network's signed settings decide what is served.";
        };
        publish = publishOption "in this network (besides ${opt}.publish)";
        services = servicesOption "in this network (besides ${opt}.services; a name in both is this one)";
        admin = {
          keyFile = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "/run/secrets/data-mesher-admin-key";
            description = ''
              The network's admin key (its private half), outside the Nix
              store, on a machine that administers the network: the unit
              data-mesher-settings-<name> (a credential of it only) then
              declares the namespaces and writes the aliases below, once
              the agent has synced with the mesh. The settings must exist
              (`dm-agent network create --publish`); until then the unit
              fails and tries again a minute later. null: no admin here.
            '';
          };
          namespaces = adminLib.namespacesOption;
          aliases = adminLib.aliasesOption;
          witnesses = mkOption {
            type = types.listOf ed25519Key;
            default = [ ];
            description = "Node keys added to the settings' witnesses (never removed here).";
          };
          hostTTL = mkOption {
            type = types.nullOr goDuration;
            default = null;
            example = "672h";
            description = "How long a host stays in the network without a heartbeat; null: as the settings have it.";
          };
          createSettings = mkOption {
            type = types.bool;
            default = false;
            description = ''
              Create the network's settings (domain, witnesses, hostTTL,
              namespaces) when the mesh has none: once the agent has
              synced and found none, or found no peer for five minutes.
              Done once per machine; the clan service's admin role sets it.
            '';
          };
        };
      };
      config.admin.namespaces = adminLib.namespaceDefaults;
    };

  # The networks this machine administers.
  adminNetworks = lib.filterAttrs (_: n: n.admin.keyFile != null) cfg.networks;

  # The entries of every network: the SSH host keys and the global
  # entries and services, then the network's own.
  sshKeyType =
    k:
    {
      rsa = "ssh-rsa";
      dsa = "ssh-dss";
      ed25519 = "ssh-ed25519";
      ecdsa = "ecdsa-sha2-nistp${toString (k.bits or 256)}";
      ed25519-sk = "sk-ssh-ed25519@openssh.com";
      ecdsa-sk = "sk-ecdsa-sha2-nistp256@openssh.com";
    }
    .${k.type} or "ssh-${k.type}";
  sshHostKeys = lib.optionals cfg.ssh.publishHostKeys (
    map (k: {
      namespace = "ssh.host-keys";
      key = sshKeyType k;
      value = null;
      valueFile = "${k.path}.pub";
    }) config.services.openssh.hostKeys
  );
  srvEntry = name: s: {
    namespace = "dns.services";
    key = "_${name}._${s.protocol}";
    value = "${toString s.priority} ${toString s.weight} ${toString s.port}";
    valueFile = null;
  };
  published = n: sshHostKeys ++ cfg.publish ++ n.publish ++ lib.mapAttrsToList srvEntry (cfg.services // n.services);

  # The known_hosts the agent writes (config.json's, unless turned off).
  knownHostsFile =
    let
      f = cfg.settings.known_hosts_file;
    in
    if f == null then "${if cfg.settings.state_dir == null then stateDir else cfg.settings.state_dir}/known_hosts" else f;

  # config.json without unset (null) keys, in lists of objects too.
  clean =
    v:
    if builtins.isAttrs v then
      builtins.mapAttrs (_: clean) (lib.filterAttrs (_: x: x != null) v)
    else if builtins.isList v then
      map clean v
    else
      v;
in
{
  options.services.${service} = {
    enable = mkEnableOption "data-mesher, names for a WireGuard mesh without a central DNS server";

    package = mkOption {
      type = types.package;
      description = "The dm-agent package. This flake's NixOS modules set it to the flake's package.";
    };

    interface = mkOption {
      type = interfaceName;
      default = "wg0";
      description = "The WireGuard interface of the mesh. The agent listens on its address only.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the agent's ports (gossip, peer endpoint, DNS) on the mesh interface only.";
    };

    networks = mkOption {
      type = types.attrsOf (types.submodule networkModule);
      default = { };
      description = "The networks this machine joins, by name (usually the domain).";
    };

    hostnames = mkOption {
      type = types.listOf types.str;
      default = [ config.networking.hostName ];
      defaultText = literalExpression "[ config.networking.hostName ]";
      description = "Names this machine claims in every network.";
    };

    keyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/data-mesher-node-key";
      description = ''
        The node key, outside the Nix store (passed with LoadCredential).
        null: a key is generated in the state directory on first start.
      '';
    };

    ports = {
      gossip = mkOption {
        type = types.port;
        default = 7946;
        description = "Gossip port (TCP and UDP).";
      };
      http = mkOption {
        type = types.port;
        default = 7331;
        description = "Peer endpoint port (data.json, sync, reachability).";
      };
      dns = mkOption {
        type = types.port;
        default = 53;
        description = "DNS port on the tunnel address.";
      };
    };

    dns = {
      listen = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Extra addresses to answer DNS on (address:port).";
      };
      forwarders = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Where names outside the mesh go; empty: they are refused (not an open resolver).";
      };
    };

    splitDNS = mkOption {
      type = types.bool;
      default = config.services.resolved.enable;
      defaultText = literalExpression "config.services.resolved.enable";
      description = ''
        Route the networks' domains to the agent through systemd-resolved
        (~domain routing on the mesh interface), leaving other names alone.
        Never touches /etc/hosts or resolv.conf.
      '';
    };

    tsaUrls = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Timestamp authorities to ask before those the networks' settings list.";
    };

    metricsListen = mkOption {
      type = types.str;
      default = "127.0.0.1:9103";
      description = "Loopback address of the Prometheus metrics, or \"off\".";
    };

    logLevel = mkOption {
      type = types.enum [
        "debug"
        "info"
        "warn"
        "error"
      ];
      default = "info";
      description = "Log level.";
    };

    publish = publishOption "in every network this machine joins";
    services = servicesOption "in every network this machine joins";

    ssh = {
      publishHostKeys = mkOption {
        type = types.bool;
        default = config.services.openssh.enable;
        defaultText = literalExpression "config.services.openssh.enable";
        description = ''
          Publish this machine's SSH host public keys (each of
          services.openssh.hostKeys: its path + ".pub", under its key type)
          in the ssh.host-keys namespace of every network it joins, so that
          the other machines' known_hosts list them.
        '';
      };
      knownHosts = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Add the agent's known_hosts file (the published host keys of the
          hosts it resolves and has seen answer at their addresses, under
          their mesh names and tunnel addresses) to
          programs.ssh.knownHostsFiles: `ssh mors.clan` then checks the
          host key without a prompt. The file is world-readable; the state
          directory lets everyone reach it.
        '';
      };
    };

    settings = mkOption {
      type = types.submodule ./settings.nix;
      default = { };
      description = ''
        The agent's configuration file, one option for each key dm-agent
        reads (see nixos/settings.nix, `dm-agent run --help` and the
        README). The options above fill it; a value set here replaces just
        the key it names. Unlike RFC 42's freeform settings, a key dm-agent
        does not know is an error here, as it would be for dm-agent.
      '';
    };
  };

  config = mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = cfg.networks != { };
            message = "${opt}.networks is empty: join at least one network (its admin key as pubkey).";
          }
        ]
        ++ lib.mapAttrsToList (domain: labels: {
          assertion = lib.length labels == 1;
          message = "${opt}.networks: ${lib.concatMapStringsSep " and " (l: ''"${l}"'') labels} have the same domain ${domain}; each network needs its own (split DNS routes a domain to one network).";
        }) (lib.groupBy' (ls: l: ls ++ [ l ]) [ ] (l: cfg.networks.${l}.domain) (lib.attrNames cfg.networks))
        ++ lib.concatLists (
          lib.mapAttrsToList (
            label: n:
            let
              where = "${opt}.networks.\"${label}\"";
              entries = published n;
              # The namespaces this module knows to be lww registers: two
              # entries of one key there would overwrite each other.
              registers = lib.filter (e: e.namespace == "dns.services" || e.namespace == "ssh.host-keys") entries;
              dups = lib.filterAttrs (_: es: lib.length es > 1) (lib.groupBy (e: "${e.namespace} ${e.key}") registers);
            in
            lib.imap0 (i: e: {
              assertion = (e.value == null) != (e.valueFile == null);
              message = "${where}: the entry ${e.namespace} ${e.key} (publish, ${toString i}) needs exactly one of value and valueFile.";
            }) entries
            ++ lib.mapAttrsToList (k: _: {
              assertion = false;
              message = "${where} publishes ${k} more than once (one key of an lww namespace holds one value); check ${opt}.services, .publish and services.openssh.hostKeys.";
            }) dups
            ++ lib.mapAttrsToList (name: _: {
              assertion = serviceName.check name;
              message = "${where}.services: \"${name}\" is not a service name (lower-case letters, digits and inner '-', without the underscore: \"ssh\" for _ssh._tcp).";
            }) (cfg.services // n.services)
            ++ lib.optionals (n.admin.keyFile != null) (
              adminLib.assertions "${where}.admin" n.admin
              ++ [
                {
                  # It names the admin's unit.
                  assertion = builtins.match "[A-Za-z0-9_.-]+" label != null;
                  message = "${where}.admin: the network's name must be letters, digits, '_', '.' and '-' only: it names the unit data-mesher-settings-${label}.";
                }
              ]
            )
          ) cfg.networks
        )
        ++ lib.optional (service != "data-mesher") {
          # clan-core's data-mesher (file sync) uses the same unit, state
          # directory and ports.
          assertion = !(config.services.data-mesher.enable or false);
          message = "${opt} and services.data-mesher (clan-core's data-mesher) cannot both run: they use the same unit, state directory and ports.";
        };

        services.${service} = {
          settings = defaultLeaves (
            import ./render.nix {
              cfg = cfg // {
                inherit stateDir published;
              };
            }
          );
        };

        environment.systemPackages = [ cfg.package ];
        # A stable path: a changed configuration reloads the agent (SIGHUP)
        # instead of restarting it.
        environment.etc."data-mesher/config.json".source = format.generate "data-mesher.json" (clean cfg.settings);

        users.users.${user} = {
          isSystemUser = true;
          inherit group;
          description = "data-mesher agent";
        };
        users.groups.${group} = { };

        programs.ssh.knownHostsFiles = lib.optional (cfg.ssh.knownHosts && knownHostsFile != "off") knownHostsFile;

        systemd.services.data-mesher = {
          description = "data-mesher: names for the WireGuard mesh";
          # Stops with the WireGuard unit, starts again with it.
          wantedBy = [ "multi-user.target" ] ++ lib.optional wgDeclared wgUnit;
          wants = [ "network-online.target" ];
          after = [
            "network-online.target"
          ]
          ++ lib.optional wgDeclared wgUnit
          ++ lib.optional wgNetworkd "systemd-networkd.service";
          bindsTo = lib.optional wgDeclared wgUnit;
          reloadTriggers = [ config.environment.etc."data-mesher/config.json".source ];

          serviceConfig = {
            Type = "notify";
            NotifyAccess = "main";
            ExecStartPre = lib.optional (cfg.keyFile == null) "${cfg.package}/bin/dm-agent keygen --if-missing --out /var/lib/data-mesher/node.key --comment ${lib.escapeShellArg config.networking.hostName}";
            ExecStart = "${cfg.package}/bin/dm-agent run --config /etc/data-mesher/config.json";
            # After READY=1 (Type=notify), as root.
            ExecStartPost = lib.optional cfg.splitDNS "+${resolvedSetup}";
            ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
            Restart = "on-failure";
            RestartSec = "5s";
            WatchdogSec = "60s";
            TimeoutStopSec = "30s";

            User = user;
            Group = group;
            StateDirectory = "data-mesher";
            # The agent's files carry their own modes: node.key and state.bin
            # 0600 (the agent's alone), dns.json and the files view (data/,
            # directories 0750, files 0640) for the group, known_hosts 0644
            # for everyone. The directory lets the group list it and everyone
            # else only pass through to a file they may read (known_hosts).
            StateDirectoryMode = "0751";
            RuntimeDirectory = "data-mesher";
            RuntimeDirectoryMode = "0750";
            LoadCredential = lib.optional (cfg.keyFile != null) "node-key:${cfg.keyFile}";
            # Directories the agent makes (the files view's, 0750) keep their
            # group bits; nothing is made for others.
            UMask = "0027";

            # Port 53, and reading WireGuard peers through wgctrl.
            AmbientCapabilities = [
              "CAP_NET_BIND_SERVICE"
              "CAP_NET_ADMIN"
            ];
            CapabilityBoundingSet = [
              "CAP_NET_BIND_SERVICE"
              "CAP_NET_ADMIN"
            ];
            NoNewPrivileges = true;
            ProtectSystem = "strict";
            ProtectHome = true;
            PrivateTmp = true;
            PrivateDevices = true;
            ProtectHostname = true;
            ProtectClock = true;
            ProtectKernelTunables = true;
            ProtectKernelModules = true;
            ProtectKernelLogs = true;
            ProtectControlGroups = true;
            ProtectProc = "invisible";
            ProcSubset = "pid";
            RestrictAddressFamilies = [
              "AF_INET"
              "AF_INET6"
              "AF_NETLINK"
              "AF_UNIX"
            ];
            RestrictNamespaces = true;
            RestrictRealtime = true;
            RestrictSUIDSGID = true;
            LockPersonality = true;
            MemoryDenyWriteExecute = true;
            RemoveIPC = true;
            SystemCallArchitectures = "native";
            SystemCallFilter = [
              "@system-service"
              "~@privileged"
              "~@resources"
            ];
            SystemCallErrorNumber = "EPERM";
          };
        };

        networking.firewall.interfaces.${cfg.interface} = mkIf cfg.openFirewall {
          allowedTCPPorts = [
            cfg.ports.gossip
            cfg.ports.http
            cfg.ports.dns
          ];
          allowedUDPPorts = [
            cfg.ports.gossip
            cfg.ports.dns
          ];
        };
      }
      {
        # The admin's unit of each network this machine administers (see
        # admin.nix).
        systemd.services = lib.mapAttrs' (
          label: n:
          lib.nameValuePair "data-mesher-settings-${label}" (
            adminLib.unit {
              dm = lib.escapeShellArg "${cfg.package}/bin/dm-agent";
              jq = lib.escapeShellArg "${pkgs.jq}/bin/jq";
              inherit label;
              inherit (n) domain;
              inherit (n) admin;
              edits =
                lib.optional (n.admin.hostTTL != null) "--host-ttl ${lib.escapeShellArg n.admin.hostTTL}"
                ++ map (k: "--witness ${lib.escapeShellArg k}") n.admin.witnesses;
              create = n.admin.createSettings;
            }
          )
        ) adminNetworks;
      }
    ]
  );
}
