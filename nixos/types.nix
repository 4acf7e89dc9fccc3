# Option types shared by the agent's module (agent.nix), its configuration
# file (settings.nix) and the clan service: what dm-agent accepts, checked
# when the machine's configuration is evaluated rather than when the agent
# starts.
lib:
let
  inherit (lib) types;
  label = "[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?";
  lower = "[a-z0-9]([a-z0-9-]*[a-z0-9])?";
  goDuration = types.strMatching "([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+" // {
    description = "duration such as \"90s\" or \"24h\"";
  };

  # Standard base64 (RFC 4648 §4), for rawEd25519 below.
  alphabet = lib.stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  sextet = builtins.listToAttrs (lib.imap0 (i: c: lib.nameValuePair c i) alphabet);
  # Groups of n elements (the last one shorter).
  groups =
    n: l: if l == [ ] then [ ] else [ (lib.take n l) ] ++ groups n (lib.drop n l);
  # Text without padding → bytes.
  decode64 =
    s:
    lib.concatMap (
      g:
      let
        v = lib.foldl (acc: c: acc * 64 + sextet.${c}) 0 g;
        n = lib.length g;
        # A group of n characters holds n - 1 bytes, left-aligned.
        bits = v * (if n == 4 then 1 else if n == 3 then 64 else 4096);
        all = [
          (bits / 65536)
          (lib.mod (bits / 256) 256)
          (lib.mod bits 256)
        ];
      in
      lib.take (n - 1) all
    ) (groups 4 (lib.stringToCharacters (lib.removeSuffix "=" (lib.removeSuffix "=" s))));
  # Bytes → text with padding.
  encode64 =
    bytes:
    lib.concatMapStrings (
      g:
      let
        n = lib.length g;
        v = lib.foldl (acc: b: acc * 256 + b) 0 (g ++ lib.genList (_: 0) (3 - n));
        chars = map (shift: builtins.elemAt alphabet (lib.mod (v / shift) 64)) [
          262144
          4096
          64
          1
        ];
      in
      lib.concatStrings (lib.take (n + 1) chars) + lib.concatStrings (lib.genList (_: "=") (3 - n))
    ) (groups 3 bytes);
in
{
  # A Linux interface name: 1 to 15 bytes without "/", ":" or white space;
  # here also starting with a letter or digit (so never "." or "..").
  interfaceName = types.strMatching "[A-Za-z0-9][A-Za-z0-9_.=+-]{0,14}" // {
    description = "Linux network interface name";
  };
  # An OpenSSH ed25519 public key, optionally with a comment: the base64
  # blob is the key type's name and the 32 bytes of the key.
  ed25519Key = types.strMatching "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}( [^\n]*)?" // {
    description = "OpenSSH ed25519 public key (ssh-ed25519 AAAAC3NzaC1lZDI1NTE5…)";
  };
  domainName = types.strMatching "${label}([.]${label})*" // {
    description = "DNS domain name";
  };
  # A Go duration ("90s", "24h", "1h30m") or a number of seconds.
  duration = types.either goDuration types.number;
  # A Go duration as text only: what `dm-agent settings` takes on its
  # command line (--host-ttl, a namespace's lifetime=).
  inherit goDuration;
  # A namespace's name, as dm-agent checks it: lower-case letters,
  # digits, '-' and '.', 1 to 64 bytes, not beginning with '-' or '.'.
  namespaceName = types.strMatching "[a-z0-9][a-z0-9.-]{0,63}" // {
    description = "namespace name (lower-case letters, digits, '-' and '.')";
  };
  # A name relative to a network's domain, as DNS entries hold it
  # (lower-case labels: "wiki", "www.beta").
  relativeName = types.strMatching "${lower}([.]${lower})*" // {
    description = "lower-case DNS name relative to the domain (\"wiki\", \"www.beta\")";
  };
  # Where an alias points: a relative name, or an absolute one with its
  # trailing dot ("gate", "gate.clan.", "example.org.").
  aliasTarget = types.strMatching "${lower}([.]${lower})*[.]?" // {
    description = "DNS name, relative (\"gate\") or absolute with a trailing dot (\"example.org.\")";
  };
  # The service of an SRV record, without its underscore: "ssh" for
  # _ssh._tcp.
  serviceName = types.strMatching "[a-z0-9]([a-z0-9-]{0,60}[a-z0-9])?" // {
    description = "service name such as \"ssh\" (lower-case letters, digits and inner '-'; the underscore is added)";
  };

  # The 32 bytes of an OpenSSH ed25519 public key ("ssh-ed25519 AAAA…",
  # as ed25519Key accepts it) in standard base64, the form data.json
  # writes and `dm-agent settings --namespace "… keys=K,K"` takes (a spec
  # is split at spaces, so the OpenSSH form cannot stand there). The
  # OpenSSH blob is 51 bytes, the key its last 32: decoded and encoded
  # here, at evaluation, in plain Nix.
  rawEd25519 =
    key:
    let
      blob = builtins.elemAt (lib.splitString " " key) 1;
      bytes = lib.drop 19 (decode64 blob);
    in
    assert lib.length bytes == 32;
    encode64 bytes;
}
