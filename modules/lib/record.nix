# `types.submodule module`, merged without a module-system evaluation per
# entry. A host may declare thousands of secrets; evaluating each as a
# submodule costs well over 100 kB of heap per secret (the module system's
# own bookkeeping), several times the cost of merging its fields. This type
# keeps the submodule's option declarations (so documentation and type
# checks are the same) and merges each field with the module system's own
# `mergeDefinitions`, so mkIf, mkMerge, mkDefault and mkForce keep working
# per field and per entry.
#
# What it does not do, unlike a submodule: definitions must be attribute
# sets (not module functions or paths), and `module` is called with only
# `name` and `config`.
{ lib }:
module:
let
  inherit (lib)
    concatMap
    filter
    attrNames
    head
    last
    isAttrs
    isFunction
    showOption
    mkOptionDefault
    ;

  type = lib.types.submodule module // {
    # evalModules rebuilds a type that has submodules from their modules;
    # keep this one.
    getSubModules = null;
    substSubModules = _: type;

    merge =
      loc: defs:
      let
        decls = (module { name = last loc; config = value; }).options;

        attrDefs = map (
          d:
          if isAttrs d.value then
            d
          else
            throw "The option `${showOption loc}' is defined in `${d.file}' as ${
              if isFunction d.value then "a function" else "a path"
            }: define it with an attribute set of its options."
        ) defs;

        unknown = concatMap (
          d:
          map (field: {
            inherit field;
            inherit (d) file;
          }) (filter (field: !(decls ? ${field})) (attrNames d.value))
        ) attrDefs;

        fieldDefs =
          field:
          concatMap (
            d:
            if d.value ? ${field} then
              [
                {
                  inherit (d) file;
                  value = d.value.${field};
                }
              ]
            else
              [ ]
          ) attrDefs;

        mergeField =
          field: opt:
          let
            given = fieldDefs field;
          in
          # The common case, a field left at its default, skips the
          # priority machinery: there is nothing to merge.
          if given == [ ] && opt ? default then
            opt.default
          else
            (lib.modules.mergeDefinitions (loc ++ [ field ]) opt.type (
              lib.optional (opt ? default) {
                file = "the nixseal module (default)";
                value = mkOptionDefault opt.default;
              }
              ++ given
            )).mergedValue;

        value = builtins.mapAttrs mergeField decls;
      in
      if unknown == [ ] then
        value
      else
        throw "The option `${showOption (loc ++ [ (head unknown).field ])}' does not exist. Definition in `${(head unknown).file}'.";
  };
in
type
