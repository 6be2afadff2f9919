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
# sets (not module functions or paths; refused with a message saying so),
# and `module` is called with only `name` and `config`. Documented in the
# descriptions of nixseal.secrets and nixseal.templates.
{ lib }:
module:
let
  inherit (lib) concatMap filter attrNames head last isAttrs isFunction showOption mkOptionDefault;

  type = lib.types.submodule module // {
    # evalModules hands a type the modules of all declarations of its
    # option. Ours alone: keep this type. A user module that declares the
    # option again to add fields (as with any submodule) gets a real
    # submodule of all of them: slower, but the same meaning.
    substSubModules = modules:
      if builtins.length modules <= 1 then
        type
      else
        lib.types.submoduleWith {
          inherit modules;
          shorthandOnlyDefinesConfig = true;
        };

    merge = loc: defs:
      let
        decls = (module { name = last loc; config = value; }).options;

        attrDefs = map
          (d:
            if isAttrs d.value then
              d
            else
              throw "The option `${showOption loc}' is defined in `${d.file}' as ${if isFunction d.value then "a function" else "a path"}: entries of `${showOption (lib.init loc)}' must be attribute sets of their options (unlike other submodules, no `{ name, config, ... }: { ... }' functions or module files): write it as `{ owner = ...; mode = ...; }', with values from the enclosing module's arguments.")
          defs;

        unknown = concatMap
          (d: map (field: { inherit field; inherit (d) file; }) (filter (field: !(decls ? ${field})) (attrNames d.value)))
          attrDefs;

        fieldDefs = field:
          concatMap (d: if d.value ? ${field} then [{ inherit (d) file; value = d.value.${field}; }] else [ ]) attrDefs;

        mergeField = field: opt:
          let
            given = fieldDefs field;
          in
          # The common case, a field left at its default, skips the
          # priority machinery: there is nothing to merge.
          if given == [ ] && opt ? default then
            opt.default
          else
            (lib.modules.mergeDefinitions (loc ++ [ field ]) opt.type (
              lib.optional (opt ? default) { file = "the nixseal module (default)"; value = mkOptionDefault opt.default; }
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
