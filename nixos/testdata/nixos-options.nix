# The NixOS options that nixos/agent.nix, the clan service, clan's vars
# schema and the VM test's nodes set or read, declared with the types
# nixpkgs gives them, so that the real module system (nixpkgs' lib) checks
# definitions as a NixOS machine would: a port outside 0–65535, a misspelt
# unit attribute or an undeclared option fail here as there. Only what the
# evaluated modules touch is declared; a real NixOS has far more. Written
# for these tests (NixOS's own modules are not available offline).
{ config, lib, ... }:
let
  inherit (lib) mkOption types;

  # A systemd unit setting (serviceConfig.X): a bool, number or string, or a
  # list of them. Definitions of a list concatenate (ExecStartPre from two
  # modules both run); single values must agree unless priorities decide,
  # as in NixOS.
  unitValue = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
  ];
  unitOption = lib.mkOptionType {
    name = "systemd option";
    description = "systemd unit setting";
    check = v: unitValue.check v || (builtins.isList v && builtins.all unitValue.check v);
    merge =
      loc: defs:
      if builtins.any (d: builtins.isList d.value) defs then
        builtins.concatMap (d: lib.toList d.value) defs
      else
        lib.mergeEqualOption loc defs;
  };
  unitNames = mkOption {
    type = types.listOf types.str;
    default = [ ];
    description = "Unit names.";
  };

  serviceModule =
    { ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Whether the unit is part of the system.";
        };
        description = mkOption {
          type = types.singleLineStr;
          default = "";
          description = "The unit's description.";
        };
        wantedBy = unitNames;
        requiredBy = unitNames;
        wants = unitNames;
        requires = unitNames;
        after = unitNames;
        before = unitNames;
        bindsTo = unitNames;
        partOf = unitNames;
        conflicts = unitNames;
        reloadTriggers = mkOption {
          type = types.listOf unitValue;
          default = [ ];
          description = "Values whose change reloads the unit.";
        };
        restartTriggers = mkOption {
          type = types.listOf unitValue;
          default = [ ];
          description = "Values whose change restarts the unit.";
        };
        path = mkOption {
          type = types.listOf (types.either types.package types.str);
          default = [ ];
          description = "Packages on the unit's PATH.";
        };
        environment = mkOption {
          type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
          default = { };
          description = "Environment variables.";
        };
        script = mkOption {
          type = types.lines;
          default = "";
          description = "Shell commands run as the main process.";
        };
        preStart = mkOption {
          type = types.lines;
          default = "";
          description = "Shell commands run before the main process.";
        };
        postStart = mkOption {
          type = types.lines;
          default = "";
          description = "Shell commands run after the main process started.";
        };
        unitConfig = mkOption {
          type = types.attrsOf unitOption;
          default = { };
          description = "The [Unit] section.";
        };
        serviceConfig = mkOption {
          type = types.attrsOf unitOption;
          default = { };
          description = "The [Service] section.";
        };
      };
    };

  etcModule =
    { name, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Whether the file is created.";
        };
        target = mkOption {
          type = types.str;
          default = name;
          description = "Path relative to /etc.";
        };
        text = mkOption {
          type = types.nullOr types.lines;
          default = null;
          description = "The file's content.";
        };
        source = mkOption {
          type = types.path;
          description = "The file's source.";
        };
        mode = mkOption {
          type = types.str;
          default = "symlink";
          description = "symlink, or the mode of a copy.";
        };
        user = mkOption {
          type = types.str;
          default = "+0";
          description = "Owner of a copy.";
        };
        group = mkOption {
          type = types.str;
          default = "+0";
          description = "Group of a copy.";
        };
      };
    };

  userModule =
    { name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          description = "The user's name.";
        };
        description = mkOption {
          type = types.str;
          default = "";
          description = "What the user is for.";
        };
        isSystemUser = mkOption {
          type = types.bool;
          default = false;
          description = "A system user.";
        };
        group = mkOption {
          type = types.str;
          default = "";
          description = "The primary group.";
        };
        extraGroups = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "Supplementary groups.";
        };
      };
    };

  firewallPorts = {
    allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      description = "Open TCP ports.";
    };
    allowedUDPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      description = "Open UDP ports.";
    };
  };

  wireguardPeer = {
    options = {
      publicKey = mkOption {
        type = types.singleLineStr;
        description = "The peer's public key.";
      };
      allowedIPs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Addresses routed to the peer.";
      };
      endpoint = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "host:port of the peer.";
      };
      persistentKeepalive = mkOption {
        type = types.nullOr types.int;
        default = null;
        description = "Keepalive interval.";
      };
    };
  };
  wireguardInterface = {
    options = {
      ips = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "The interface's addresses.";
      };
      listenPort = mkOption {
        type = types.nullOr types.port;
        default = null;
        description = "UDP port.";
      };
      privateKeyFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "The private key, outside the store.";
      };
      peers = mkOption {
        type = types.listOf (types.submodule wireguardPeer);
        default = [ ];
        description = "The peers.";
      };
    };
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf (
        types.submodule {
          options = {
            assertion = mkOption {
              type = types.bool;
              description = "Holds when the configuration is right.";
            };
            message = mkOption {
              type = types.str;
              description = "What to say when it does not.";
            };
          };
        }
      );
      default = [ ];
      description = "Conditions a configuration must meet.";
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Warnings printed when the system is built.";
    };

    systemd.services = mkOption {
      type = types.attrsOf (types.submodule serviceModule);
      default = { };
      description = "systemd services.";
    };
    systemd.sysusers.enable = mkOption {
      type = types.bool;
      default = false;
      description = "Users made by systemd-sysusers.";
    };

    system.activationScripts = mkOption {
      type = types.attrsOf (
        types.either types.str (
          types.submodule {
            options = {
              text = mkOption {
                type = types.lines;
                description = "The script.";
              };
              deps = mkOption {
                type = types.listOf types.str;
                default = [ ];
                description = "Scripts run before it.";
              };
              supportsDryActivation = mkOption {
                type = types.bool;
                default = false;
                description = "Whether it runs in a dry activation.";
              };
            };
          }
        )
      );
      default = { };
      description = "Scripts run when the system is activated.";
    };

    users.users = mkOption {
      type = types.attrsOf (types.submodule userModule);
      default = { };
      description = "Users.";
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule { });
      default = { };
      description = "Groups.";
    };

    environment.etc = mkOption {
      type = types.attrsOf (types.submodule etcModule);
      default = { };
      description = "Files in /etc.";
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = "Packages in the system profile.";
    };

    networking.hostName = mkOption {
      # NixOS: an RFC 1035 label.
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = "nixos";
      description = "The machine's host name.";
    };
    networking.firewall = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "The firewall.";
      };
      interfaces = mkOption {
        type = types.attrsOf (types.submodule { options = firewallPorts; });
        default = { };
        description = "Ports open on one interface only.";
      };
    }
    // firewallPorts;
    networking.wireguard = {
      enable = mkOption {
        type = types.bool;
        default = config.networking.wireguard.interfaces != { };
        description = "WireGuard interfaces.";
      };
      useNetworkd = mkOption {
        type = types.bool;
        default = false;
        description = "Set up the interfaces with systemd-networkd.";
      };
      interfaces = mkOption {
        type = types.attrsOf (types.submodule wireguardInterface);
        default = { };
        description = "WireGuard interfaces by name.";
      };
    };

    services.resolved.enable = mkOption {
      type = types.bool;
      default = false;
      description = "systemd-resolved.";
    };
    services.openssh = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = "The OpenSSH server.";
      };
      # As nixpkgs declares it: a list of attribute sets (type, path, and
      # bits for some types), by default an RSA and an ed25519 key.
      hostKeys = mkOption {
        type = types.listOf types.attrs;
        default = [
          {
            type = "rsa";
            bits = 4096;
            path = "/etc/ssh/ssh_host_rsa_key";
          }
          {
            type = "ed25519";
            path = "/etc/ssh/ssh_host_ed25519_key";
          }
        ];
        description = "The host keys sshd generates and uses.";
      };
    };
    programs.ssh.knownHostsFiles = mkOption {
      type = types.listOf types.path;
      default = [ ];
      description = "Files of known host keys.";
    };
  };
}
