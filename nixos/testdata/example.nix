# The configuration users write (DESIGN.md, "NixOS"; the README's example),
# for a machine whose networking.hostName is "mors" (testdata/module.nix).
# Its rendered config.json is example.golden.json. The argument is the
# module's instance: data-mesher (module.nix) or dm-agent (dm-agent.nix).
service: {
  services.${service} = {
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
}
