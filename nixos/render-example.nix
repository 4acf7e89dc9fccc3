# nix-instantiate --eval --strict --json nixos/render-example.nix
import ./render.nix { cfg = import ./example.nix; }
