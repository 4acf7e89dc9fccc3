# The agent's configuration file, config.json, as options: one for each
# key dm-agent reads (agent.Config in agent/config.go), typed as dm-agent
# checks it. There is no freeform part: dm-agent refuses a key it does not
# know, so a misspelt key (tsa_url for tsa_urls) fails here, when the
# machine is evaluated, with "does not exist … Did you mean", instead of
# when the agent starts. nixos/nix_test.go checks that these options and
# agent.Config's keys are the same. Unset (null) values are left out of
# the file, so dm-agent applies its default.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  inherit (import ./types.nix lib) interfaceName ed25519Key duration;
  opt =
    type: description:
    mkOption {
      type = types.nullOr type;
      default = null;
      inherit description;
    };
  strings = description: opt (types.listOf types.str) description;
  absolute = types.strMatching "/.*" // {
    description = "absolute path";
  };
in
{
  options = {
    interface = opt interfaceName "The WireGuard interface of the mesh.";
    state_dir = opt absolute "The state file, dns.json and, by default, the key.";
    key_file = opt types.str "The node's private key; a relative path is a systemd credential.";
    hostnames = strings "Names claimed in every network that lists none of its own.";
    networks = opt (types.attrsOf (
      types.submodule {
        options = {
          pubkey = mkOption {
            type = ed25519Key;
            description = "The network's admin key.";
          };
          priority = opt types.number "Lower wins between networks giving the same name.";
          bootstrap_peers = strings "data.json sources for a first join.";
          hostnames = strings "Names claimed in this network instead of the global ones.";
          publish = opt (types.listOf (
            types.submodule {
              options = {
                namespace = mkOption {
                  type = types.str;
                  description = "The namespace the entry goes in.";
                };
                key = mkOption {
                  type = types.str;
                  description = "The entry's key.";
                };
                value = opt types.str "The value.";
                value_file = opt absolute "A file whose content is the value, read at run time.";
              };
            }
          )) "Entries this node keeps written in the network's namespaces.";
        };
      }
    )) "The joined networks, by label.";
    bind_address = opt types.str "The tunnel address to use (default: the interface's first).";
    ports = {
      gossip = opt types.port "Gossip port (TCP and UDP).";
      http = opt types.port "Peer endpoint port.";
      dns = opt types.port "DNS port.";
    };
    dns = {
      listen = strings "Extra address:port pairs to answer DNS on.";
      forwarders = strings "Where names outside the mesh go (address:port).";
      json_file = opt types.str "Where dns.json is written, or \"off\".";
    };
    data_dir = opt types.str "Where the files view of the namespaces is written, or \"off\".";
    known_hosts_file = opt types.str "Where the mesh's SSH known_hosts is written, or \"off\".";
    tsa_urls = strings "Timestamp authorities asked before the networks' own.";
    control_socket = opt absolute "The local socket of the command line.";
    metrics_listen = opt types.str "Loopback address:port of the metrics, or \"off\".";
    log = {
      level = opt (types.enum [
        "debug"
        "info"
        "warn"
        "error"
      ]) "Log level.";
      format = opt (types.enum [
        "text"
        "json"
      ]) "Log format.";
    };
    heartbeat = opt duration "How often the host record is re-signed.";
    sync_interval = opt duration "How often anti-entropy runs.";
    max_skew = opt duration "How far in the future a record may be dated.";
    reachability_ttl = opt duration "How long a passed reachability challenge counts.";
    tsa_retry = opt duration "How soon a claim without a timestamp asks again.";
  };
}
