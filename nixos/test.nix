# NixOS VM test: three machines joined by networking.wireguard; every
# machine resolves the others' names through its agent (gamma also through
# systemd-resolved, by split DNS), and doctor passes. alpha administers the
# network from its options (namespaces, an alias) and declares its sshd as
# an SRV record; every machine publishes its SSH host keys, so gamma's ssh
# checks beta's without a prompt; another service reads dns.json and the
# files view through the agent's group.
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
          # The admin's unit waits for the settings, which the test script
          # creates by hand.
          admin = lib.mkIf (name == "alpha") {
            keyFile = "/etc/dm-admin.key";
            aliases.wiki = "beta";
          };
        };
        services = lib.mkIf (name == "alpha") { ssh.port = 22; };
      };
      # Its host keys go to the mesh (ssh.publishHostKeys follows sshd).
      services.openssh.enable = true;
      # gamma resolves through systemd-resolved: split DNS routes the
      # mesh domain to its agent.
      services.resolved.enable = name == "gamma";
      environment.systemPackages = [
        pkgs.dnsutils
        pkgs.jq
      ];
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
    # alpha's admin unit failed while the network had no settings (and
    # would try again in a minute): now it declares the namespaces and
    # writes the alias.
    alpha.succeed("systemctl restart data-mesher-settings-test.service")
    alpha.succeed("dm-agent settings --network test --show --json | jq -e '[.namespaces[].name] == [\"dns.aliases\", \"dns.records\", \"dns.services\", \"ssh.host-keys\"]'")
    for i, m in enumerate(machines, 1):
        m.wait_until_succeeds(f"dig +short @fd42::{i} wiki.test CNAME | grep -x beta.test.", timeout=60)
        m.wait_until_succeeds(f"dig +short @fd42::{i} _ssh._tcp.alpha.test SRV | grep -x '0 0 22 alpha.test.'", timeout=60)
    # SSH: beta's published host key is in gamma's known_hosts, which
    # gamma's ssh reads: the host key passes without a prompt, and the
    # login is refused only for want of a user key.
    gamma.wait_until_succeeds("grep -q '^beta.test,fd42::2 ssh-ed25519 ' /var/lib/data-mesher/known_hosts", timeout=90)
    out = gamma.fail("ssh -o StrictHostKeyChecking=yes -o BatchMode=yes -o UserKnownHostsFile=/dev/null beta.test true 2>&1")
    assert "Permission denied" in out and "verification failed" not in out, out
    # A service in the agent's group reads dns.json and the files view;
    # one without it cannot; everyone reads known_hosts; node.key stays
    # the agent's.
    group = "systemd-run --wait --pipe -p DynamicUser=yes -p SupplementaryGroups=data-mesher"
    nobody = "systemd-run --wait --pipe -p DynamicUser=yes"
    alpha.succeed(f"{group} cat /var/lib/data-mesher/dns.json | grep -F beta.test")
    alpha.succeed(f"{group} cat /var/lib/data-mesher/data/test/dns.aliases/wiki | grep -x beta")
    alpha.fail(f"{nobody} cat /var/lib/data-mesher/dns.json")
    alpha.succeed(f"{nobody} cat /var/lib/data-mesher/known_hosts")
    alpha.succeed("test \"$(stat -c %a /var/lib/data-mesher/node.key)\" = 600")
    for m in machines:
        m.succeed("dm-agent doctor >&2")
  '';
}
