# Evaluates the clan service (nixos/clan-service.nix) the way clan-core
# does: resolved as a flake input's clan.modules.dm-agent
# (clanLib.resolveModule), its instances evaluated by clan-core's
# distributed-service evaluator (lib/inventory/distributed-service/
# all-services-wrapper.nix), and each machine's resulting nixosModule then
# evaluated with nixpkgs' lib, clan's real vars and settings schemas
# (nixosModules/clanCore/vars/, settings.nix) and the typed NixOS options
# of nixos-options.nix. Reports what nixos/clan_test.go checks, per
# machine. Nothing of clan-core is copied: it is imported from clanPath.
{
  lib,
  clanPath,
  # The clan's directory (a string: the dummy store cannot copy a path),
  # where public vars are read: vars/per-machine/<m>/<generator>/<file>/value.
  directory,
  # inventory.instances.<name>.roles.<role>, as clan's inventory hands
  # them to the evaluator: role-wide `settings` and `machines.<m>.settings`
  # (tags already resolved into machines).
  instances,
  # Machines to report, also those in no instance.
  machines ? [ ],
}:
let
  clanLib = import (clanPath + "/lib") { inherit lib; };
  pkgs = import ./pkgs.nix { inherit lib; };

  # nixosModules.dm-agent of the flake, with the stand-in package.
  agentModule = {
    key = "data-mesher#nixosModules.dm-agent";
    imports = [
      ../dm-agent.nix
      (
        { lib, pkgs, ... }:
        {
          services.dm-agent.package = lib.mkDefault pkgs.data-mesher;
        }
      )
    ];
  };
  # The flake's input as a clan sees it.
  flakeInputs.data-mesher.clan.modules.dm-agent = import ../clan-service.nix { inherit agentModule; };
  moduleSpec = {
    name = "dm-agent";
    input = "data-mesher";
  };
  resolved = clanLib.resolveModule {
    inherit moduleSpec flakeInputs;
    clanCoreModules = { };
  };

  services = lib.evalModules {
    specialArgs = {
      inherit clanLib;
      _ctx = [
        "clan"
        "_services"
        "allServices"
      ];
    };
    modules = [
      (import (clanPath + "/lib/inventory/distributed-service/all-services-wrapper.nix") {
        inherit directory;
        varsDirectory = null;
        exports = { };
        exportInterfaces = { };
        meta = {
          name = "test";
          domain = "test.clan";
          tld = "clan";
        };
      })
      {
        allServices.data-mesher-dm-agent.imports = [
          {
            options.module = lib.mkOption {
              type = lib.types.raw;
              default = moduleSpec;
            };
          }
          resolved
        ]
        ++ lib.mapAttrsToList (name: i: { instances.${name}.roles = i.roles; }) instances;
      }
    ];
  };
  service = services.config.allServices.data-mesher-dm-agent;

  # One machine of the clan, as clan-core's machine evaluation would build
  # it from the service's result.
  machine =
    name:
    lib.evalModules {
      class = "nixos";
      specialArgs._class = "nixos";
      modules = [
        ./nixos-options.nix
        (clanPath + "/nixosModules/clanCore/settings.nix")
        (clanPath + "/nixosModules/clanCore/vars")
        {
          # Declared by clan-core's machine wrapper; undefined here (no
          # clan-wide vars settings).
          options.clanConfig = lib.mkOption {
            type = lib.types.raw;
            description = "The clan's configuration.";
          };
        }
        {
          # sops-nix's options, which clan's vars schema sets (clan
          # machines import sops-nix).
          options.sops = {
            secrets = lib.mkOption {
              type = lib.types.attrsOf lib.types.raw;
              default = { };
              description = "sops secrets.";
            };
            validateSopsFiles = lib.mkOption {
              type = lib.types.bool;
              default = true;
              description = "Check the sops files at evaluation.";
            };
            defaultSopsFile = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = null;
              description = "The default sops file.";
            };
            age.keyFile = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = null;
              description = "The age key.";
            };
          };
        }
        {
          _module.args.pkgs = pkgs;
          networking.hostName = name;
          clan.core.settings = {
            inherit directory;
            name = "test";
            machine.name = name;
          };
          # Deterministic secret paths; clan's default (sops) needs sops-nix.
          clan.core.vars.settings.secretStore = "password-store";
        }
        (service.result.final.${name}.nixosModule or { })
      ];
    };

  report =
    name:
    let
      c = (machine name).config;
      dm = c.services.dm-agent or { enable = false; };
    in
    {
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
      inherit (c) warnings;
      agent =
        if dm.enable then
          {
            inherit (dm)
              interface
              openFirewall
              keyFile
              hostnames
              ;
            networks = lib.mapAttrs (_: n: {
              inherit (n)
                pubkey
                domain
                priority
                bootstrapPeers
                hostnames
                ;
            }) dm.networks;
            configFile = c.environment.etc."data-mesher/config.json".source.text;
          }
        else
          null;
      generators = lib.mapAttrs (_: g: {
        inherit (g) share dependencies script;
        runtimeInputs = map (p: p.name) g.runtimeInputs;
        files = lib.mapAttrs (_: f: {
          inherit (f) secret deploy;
          path = if f.secret then f.path else null;
        }) g.files;
      }) c.clan.core.vars.generators;
      units = lib.mapAttrs (_: u: {
        inherit (u)
          description
          script
          after
          requires
          wantedBy
          serviceConfig
          ;
      }) (removeAttrs c.systemd.services [ "data-mesher" ]);
    };
in
{
  machines = lib.genAttrs (lib.unique (machines ++ lib.attrNames service.result.final)) report;
  roles = lib.attrNames service.roles;
  inherit (service) manifest;
  # The role settings clan's UI and API offer (clan-core converts each
  # role's interface to a JSON schema).
  schema = lib.mapAttrs (_: s: lib.attrNames (s."$defs".Input.properties or { })) service.result.api.schema;
}
