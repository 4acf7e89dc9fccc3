# Option types shared by the agent's module (agent.nix), its configuration
# file (settings.nix) and the clan service: what dm-agent accepts, checked
# when the machine's configuration is evaluated rather than when the agent
# starts.
lib:
let
  inherit (lib) types;
  label = "[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?";
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
  duration = types.either (types.strMatching "([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+" // {
    description = "duration such as \"90s\" or \"24h\"";
  }) types.number;
}
