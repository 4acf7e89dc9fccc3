# Renders the options of services.data-mesher into the agent's
# configuration file (config.json, declared key by key in settings.nix).
# agent.nix makes each value a default of its `settings`; nixos/nix_test.go
# checks that dm-agent accepts the result and reads it as the options say.
{ cfg }:
let
  network =
    name: n:
    {
      pubkey = n.pubkey;
      priority = n.priority;
      bootstrap_peers = n.bootstrapPeers;
      # null: the global hostnames (left out of the file).
      hostnames = n.hostnames;
      # The entries of the options publish and services, the SSH host
      # keys (agent.nix gathers them); none: left out.
      publish =
        let
          entries = map (e: {
            inherit (e) namespace key value;
            value_file = e.valueFile;
          }) (cfg.published n);
        in
        if entries == [ ] then null else entries;
    };
in
{
  interface = cfg.interface;
  state_dir = cfg.stateDir;
  # With a key file, systemd passes it as the credential "node-key"; a
  # relative key_file is looked up in $CREDENTIALS_DIRECTORY.
  key_file = if cfg.keyFile == null then "${cfg.stateDir}/node.key" else "node-key";
  hostnames = cfg.hostnames;
  networks = builtins.mapAttrs network cfg.networks;
  ports = {
    inherit (cfg.ports) gossip http dns;
  };
  dns = {
    listen = cfg.dns.listen;
    forwarders = cfg.dns.forwarders;
    json_file = "${cfg.stateDir}/dns.json";
  };
  # Both where the agent puts them by default, said here so that the
  # module's other options (programs.ssh.knownHostsFiles, the README's
  # consumers) name the same paths.
  data_dir = "${cfg.stateDir}/data";
  known_hosts_file = "${cfg.stateDir}/known_hosts";
  tsa_urls = cfg.tsaUrls;
  control_socket = "/run/data-mesher/control.sock";
  metrics_listen = cfg.metricsListen;
  log = {
    level = cfg.logLevel;
    format = "text";
  };
}
