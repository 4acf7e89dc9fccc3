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

  inherit (import ./types.nix lib) interfaceName ed25519Key domainName;

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
      };
    };
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

  config = mkIf cfg.enable {
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
            stateDir = "/var/lib/data-mesher";
          };
        }
      );
    };

    environment.systemPackages = [ cfg.package ];
    # A stable path: a changed configuration reloads the agent (SIGHUP)
    # instead of restarting it.
    environment.etc."data-mesher/config.json".source = format.generate "data-mesher.json" (
      lib.filterAttrsRecursive (_: v: v != null) cfg.settings
    );

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

        DynamicUser = true;
        StateDirectory = "data-mesher";
        StateDirectoryMode = "0700";
        RuntimeDirectory = "data-mesher";
        RuntimeDirectoryMode = "0750";
        LoadCredential = lib.optional (cfg.keyFile != null) "node-key:${cfg.keyFile}";
        UMask = "0077";

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
  };
}
