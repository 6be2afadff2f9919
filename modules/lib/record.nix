# `types.submodule fields`, merged without a module-system evaluation per
# entry. A host may declare thousands of secrets; evaluating each as a
# submodule costs well over 100 kB of heap per secret (the module system's
# own bookkeeping), several times the cost of merging its fields
# (docs/performance.md has the figures). This type keeps the submodule's
# option declarations (so documentation and type checks are the same) and
# merges each field with the module system's own `mergeDefinitions`, so
# mkIf, mkMerge, mkDefault and mkForce keep working per field and per entry.
#
# `fields` is `{ name, config, ... }: { options = ...; }`. Like a
# submodule's, an entry's fields may come from several declarations of the
# option, one per feature (the NixOS module declares `owner` and `group`
# in ../security/ownership.nix): while every declaration is such a record,
# the entry stays a record of all their fields. A user module that declares
# the option again with a real submodule gets a real submodule of all of
# them: slower, the same meaning.
#
# What it does not do, unlike a submodule: definitions must be attribute
# sets (not module functions or paths; refused with a message saying so),
# and `fields` is called with only `name` and `config`. Documented in the
# descriptions of nixseal.secrets and nixseal.templates.
{ lib }:
let
  inherit (lib) all concatMap filter attrNames head last isAttrs isFunction showOption mkOptionDefault;

  # A record's fields as a module (a functor) that says what it is, so that
  # substSubModules can tell it from a user's submodule.
  asModule = fields: {
    __functor = _: fields;
    __functionArgs = lib.functionArgs fields;
    nixsealFields = fields;
  };

  # The module system hands substSubModules each declaration's modules
  # wrapped as { _file; imports = [ module ]; }.
  fieldsOf = m:
    if m ? nixsealFields then
      m.nixsealFields
    else if isAttrs m && attrNames m == [ "_file" "imports" ] && builtins.length m.imports == 1 then
      fieldsOf (head m.imports)
    else
      null;

  submodule = modules: lib.types.submoduleWith { inherit modules; shorthandOnlyDefinesConfig = true; };

  # A field declared twice is an error; the submodule reports it as the
  # module system does.
  disjoint = modules:
    let
      names = concatMap (m: attrNames ((fieldsOf m) { name = "<name>"; config = { }; }).options) modules;
    in
    builtins.length names == builtins.length (lib.unique names);

  record = modules:
    let
      allFields = map fieldsOf modules;
      base = submodule modules;

      merge = loc: defs:
        let
          args = { name = last loc; config = value; };
          decls = lib.foldl' (acc: fields: acc // (fields args).options) { } allFields;

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

      type = base // {
        inherit merge;
        functor = base.functor // { nixsealRecord = true; };
        # Another record's declaration: keep a record, whose substSubModules
        # then receives the modules of all declarations.
        typeMerge = f: if f.nixsealRecord or false then type else base.typeMerge f;
        substSubModules = ms: if all (m: fieldsOf m != null) ms && disjoint ms then record ms else submodule ms;
      };
    in
    type;
in
fields: record [ (asModule fields) ]
