# The two name patterns of the modules, for `builtins.match` (the whole
# string must match). The helper checks the same names when it reads a
# rules file or a manifest, with its own copy of these patterns
# (helper/nixseal/names.py): helper/tests/test_names.py feeds both the same
# accepted and hostile strings, so that the build and the helper never
# disagree about a name.
let
  # A segment is never "." or "..", which would leave the directory.
  segment = "([A-Za-z0-9_-]|[.][A-Za-z0-9_-]|[.][.][A-Za-z0-9._-])[A-Za-z0-9._-]*";
in
{
  # A secret's name: a relative path of [A-Za-z0-9._-] segments joined by
  # "/". It becomes a file under the secrets directory and under the rules
  # directory (`<name>.age`).
  secretName = "${segment}(/${segment})*";

  # nixpkgs' pattern for systemd unit names (its unitNameType): a typo in
  # restartUnits fails the build instead of a restart at switch time.
  unitName = "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";

  # A launchd job's label on macOS (nix-darwin's `org.nixos.<name>`,
  # Homebrew's `homebrew.mxcl.postgresql@16`), which restartUnits name
  # there: no "/" (launchctl's targets are <domain>/<label>), never ".",
  # "-" or "@" first.
  launchdLabel = "[A-Za-z0-9_][A-Za-z0-9._@-]*";
}
