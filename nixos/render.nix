# Renders the options of services.data-mesher into the configuration file
# dm-agent reads (config.json). Pure, builtins only: the Go tests evaluate it
# with `nix-instantiate --eval` without nixpkgs and check that dm-agent
# accepts the result and reads it as the options say (agent/nixos_test.go).
{ cfg }:
let
  network =
    name: n:
    {
      pubkey = n.pubkey;
      priority = n.priority;
      bootstrap_peers = n.bootstrapPeers;
    }
    // (if n.hostnames == null then { } else { hostnames = n.hostnames; });
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
  tsa_urls = cfg.tsaUrls;
  control_socket = "/run/data-mesher/control.sock";
  metrics_listen = cfg.metricsListen;
  log = {
    level = cfg.logLevel;
    format = "text";
  };
}
