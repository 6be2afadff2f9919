# docs/options.md, generated from the modules' option declarations.
# Regenerate with checks/eval/gen-options-doc (never edit docs/options.md).
{
  lib-path ? builtins.getEnv "NIXPKGS_LIB",
}:
let
  harness = import ./lib.nix { inherit lib-path; };
  inherit (harness) lib;
  repoRoot = toString ../..;

  # Options of one module, without the stubs' options.
  docsOf =
    result: lib.filter (o: o.visible && !o.internal) (lib.optionAttrSetToDocList result.options.nixseal);

  nixos = harness.evalHost { };
  home = harness.evalHome {
    modules = [
      {
        home.username = "alice";
        home.homeDirectory = "/home/alice";
      }
    ];
  };

  relative = file: lib.removePrefix "${repoRoot}/" (toString file);

  # literalExpression: Nix code; literalMD: prose. Returned with what
  # follows the item's label: inline text or a code block.
  render =
    value:
    if value._type == "literalMD" then
      " ${value.text}"
    else if lib.hasInfix "\n" value.text then
      "\n\n```nix\n${lib.removeSuffix "\n" value.text}\n```\n"
    else
      " `${value.text}`";

  option =
    o:
    lib.concatStringsSep "\n" (
      [
        "### `${o.name}`"
        ""
        (lib.removeSuffix "\n" o.description)
        ""
        "- Type: ${o.type}"
      ]
      ++ lib.optional (o ? default) "- Default:${render o.default}"
      ++ lib.optional (o ? example) "- Example:${render o.example}"
      ++ lib.optional o.readOnly "- Read-only"
      ++ [
        "- Declared in: ${lib.concatMapStringsSep ", " (f: "`${relative f}`") o.declarations}"
        ""
      ]
    );

  section = title: intro: docs: ''
    ## ${title}

    ${intro}

    ${lib.concatMapStringsSep "\n" option docs}'';
in
lib.concatStringsSep "\n" [
  ''
    # nixseal options

    Generated from the modules by `checks/eval/gen-options-doc`; do not edit.
  ''
  (section "NixOS module" "Import `nixosModules.nixseal` (the module `modules/security`)." (
    docsOf nixos
  ))
  (section "home-manager module"
    "Import the flake's home-manager module (the module `modules/home-manager`) in a user's configuration. Paths may start with `%r`, the user's `$XDG_RUNTIME_DIR`."
    (docsOf home)
  )
]
