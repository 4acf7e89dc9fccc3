# services.data-mesher: the agent's NixOS module for NixOS machines (see
# agent.nix). This flake's nixosModules.default imports it and sets the
# package.
import ./agent.nix "data-mesher"
