# NixOS VM test: three machines joined by networking.wireguard; every
# machine resolves the others' names through its agent (gamma also through
# systemd-resolved, by split DNS), and doctor passes.
#   nix flake check      (or: nix build .#checks.x86_64-linux.vm)
# keys: the folder of test-keys/ (the Go tests pass its path as a string,
# since they evaluate without a store to copy it to).
{
  self,
  keys ? ./test-keys,
}:
let
  adminPub = builtins.head (builtins.match "(ssh-ed25519 [^ ]+).*\n?" (builtins.readFile (keys + "/admin.key.pub")));
  machines = [
    "alpha"
    "beta"
    "gamma"
  ];
  index = name: if name == "alpha" then 1 else if name == "beta" then 2 else 3;
  tunnel = i: "fd42::${toString i}";
  node =
    name:
    { pkgs, lib, ... }:
    let
      i = index name;
    in
    {
      imports = [ self.nixosModules.default ];
      networking.hostName = name;
      networking.firewall.allowedUDPPorts = [ 51820 ];
      networking.wireguard.interfaces.wg0 = {
        ips = [ "${tunnel i}/64" ];
        listenPort = 51820;
        privateKeyFile = "${keys}/wg${toString i}.key";
        peers = map (
          other:
          let
            j = index other;
          in
          {
            publicKey = lib.strings.trim (builtins.readFile (keys + "/wg${toString j}.pub"));
            allowedIPs = [ "${tunnel j}/128" ];
            endpoint = "192.168.1.${toString j}:51820";
          }
        ) (lib.remove name machines);
      };
      services.data-mesher = {
        enable = true;
        interface = "wg0";
        openFirewall = true;
        networks.test = {
          pubkey = adminPub;
          priority = 1;
          bootstrapPeers = lib.optional (name != "alpha") "http://[${tunnel 1}]:7331";
        };
      };
      # gamma resolves through systemd-resolved: split DNS routes the
      # mesh domain to its agent.
      services.resolved.enable = name == "gamma";
      environment.systemPackages = [ pkgs.dnsutils ];
      environment.etc."dm-admin.key" = lib.mkIf (name == "alpha") {
        source = "${keys}/admin.key";
        mode = "0600";
      };
    };
in
{
  name = "data-mesher";
  nodes = builtins.listToAttrs (
    map (name: {
      inherit name;
      value = node name;
    }) machines
  );
  testScript = ''
    start_all()
    machines = [alpha, beta, gamma]
    for m in machines:
        m.wait_for_unit("data-mesher.service")
    # The network admin (on alpha) publishes the settings, with alpha as
    # the witness that attests claims (no internet in the test).
    witness = alpha.succeed("cat /var/lib/data-mesher/node.key.pub").strip()
    alpha.succeed(f"dm-agent network create --domain test --admin-key /etc/dm-admin.key --witness '{witness}' --publish")
    for i, m in enumerate(machines, 1):
        for j, other in enumerate(machines, 1):
            m.wait_until_succeeds(
                f"dig +short @fd42::{i} {other.name}.test AAAA | grep -x fd42::{j}", timeout=120
            )
            m.wait_until_succeeds(f"dig +short @fd42::{i} -x fd42::{j} | grep -x {other.name}.test.", timeout=60)
    # Split DNS: a plain lookup on gamma goes through resolved to the agent.
    gamma.wait_until_succeeds("resolvectl query alpha.test | grep -F fd42::1", timeout=60)
    gamma.succeed("getent ahosts beta.test | grep -F fd42::2")
    for m in machines:
        m.succeed("dm-agent doctor >&2")
  '';
}
