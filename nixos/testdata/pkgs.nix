# A stand-in for nixpkgs' package set, for evaluating modules with nixpkgs'
# lib but without nixpkgs: packages are derivation-shaped attribute sets
# (types.package accepts them) with made-up store paths, and the builders
# the evaluated modules call return such sets. A written script's path is
# followed, after a newline, by its text, so that a test can run the script
# with stand-ins for the store programs it calls (stubStore in the Go
# tests is the common prefix).
{ lib, system ? "x86_64-linux" }:
let
  store = "/nix/store/00000000000000000000000000000000-";
  package = name: {
    type = "derivation";
    inherit name;
    pname = name;
    outPath = "${store}${name}";
    drvPath = "${store}${name}.drv";
    meta = { };
  };
  script = name: text: package name // {
    outPath = "${store}${name}\n${text}";
    inherit text;
  };
in
{
  inherit lib;
  stdenv.hostPlatform = {
    inherit system;
    isLinux = true;
    isDarwin = false;
  };
  formats.json =
    { }:
    {
      # The file's text is kept beside its made-up path, so tests read
      # what would be written.
      generate = name: value: package name // { text = builtins.toJSON value; };
    };
  writeShellScript = name: text: script name "#!/bin/sh\n${text}";
  writeScript = script;
  writeText = name: text: package name // { inherit text; };
  writeShellApplication =
    { name, text, ... }:
    package name // { inherit text; };
  data-mesher = package "data-mesher";
  coreutils = package "coreutils";
  jq = package "jq";
  systemd = package "systemd";
  bash = package "bash";
  dnsutils = package "dnsutils";
}
