# The configuration users write (DESIGN.md, "NixOS"), as the module sees it
# once its defaults are filled in, for a machine called "mors". The Go test
# renders it with render.nix and compares the result with example.golden.json.
let
  # What the user writes.
  user = {
    enable = true;
    interface = "wg0";
    openFirewall = true;
    networks = {
      "qubasa.clan" = {
        pubkey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTi2h4X56CzjeY4L1INl1d5JvYwh7HpaSuUlD33RhnY";
        priority = 1;
        bootstrapPeers = [ "http://[fd27:bb88:dbef:737b:3799:9318:aa77:ec12]:7331" ];
      };
      "clan" = {
        pubkey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1UM2Cza+GIRyuB9C3NqY0pSWnGC4DzmQOcWOa4SafV";
        priority = 2;
        bootstrapPeers = [ "http://[fd16:aa77:dbef:737b:3799:9316:aa77:dbef]:7331" ];
      };
    };
  };
  # The module's defaults (module.nix), as the module system applies them.
  networkDefaults = {
    priority = 1;
    bootstrapPeers = [ ];
    hostnames = null;
  };
  defaults = {
    stateDir = "/var/lib/data-mesher";
    keyFile = null;
    hostnames = [ "mors" ]; # networking.hostName
    ports = {
      gossip = 7946;
      http = 7331;
      dns = 53;
    };
    dns = {
      listen = [ ];
      forwarders = [ ];
    };
    tsaUrls = [ ];
    metricsListen = "127.0.0.1:9103";
    logLevel = "info";
  };
in
defaults
// user
// {
  networks = builtins.mapAttrs (_: n: networkDefaults // n) user.networks;
}
