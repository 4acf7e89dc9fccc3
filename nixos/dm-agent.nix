# services.dm-agent: the agent's NixOS module under a name that does not
# collide with clan-core, which imports its own data-mesher module (a
# different program) on every machine. The clan service uses this one.
import ./agent.nix "dm-agent"
