# The manifest (v1) is built here, from evaluated options, and nowhere else:
# the NixOS module and the home-manager module both hand their settings to
# `build`. Also here: the conventions the modules add to the manifest,
# without a field of their own, and the checks both modules turn into
# assertions, written to cost one pass over the secrets (hosts with
# thousands of secrets must evaluate quickly, so no per-secret scans of all
# secrets).
{ lib }:
let
  inherit (lib) concatMap filter attrNames filterAttrs groupBy length isList listToAttrs nameValuePair;
  names = import ./names.nix;

  # Placeholders are readable so that templates kept in files (which cannot
  # interpolate Nix values) can name secrets too.
  placeholderFor = name: "<nixseal:${name}>";

  # Typed placeholders: the value written for the format of the file it is
  # inserted into (quoted and escaped; the helper fails the template when
  # the format cannot hold it). Not in the manifest: the helper knows them
  # for every secret of `placeholders`. Secret names have no ":".
  placeholderFormats = [ "json" "yaml" "toml" "ini" "dotenv" "shell" ];
  typedPlaceholderFor = format: name: "<nixseal:${format}:${name}>";

  # A Nix path is copied into the store, as a real build does, so the
  # encrypted file travels with the system closure; a string is kept as
  # given (a file that is already on the target host).
  fileString = file:
    if builtins.isPath file then
      "${builtins.path { path = file; name = lib.strings.sanitizeDerivationName (baseNameOf file); }}"
    else
      toString file;

  # One regex per check: these run for every secret.
  goodName = name: builtins.match names.secretName name != null;

  # Absolute, normalized (no "", "." or ".." segments), no newline.
  pathSegment = "([^./\n]|[.][^./\n]|[.][.][^/\n])[^/\n]*";
  goodPath = allowRuntimeDir: path:
    builtins.match "${if allowRuntimeDir then "(%r)?" else ""}(/${pathSegment})+" path != null;

  # Placeholders used in a template's content, raw and typed:
  # { text; format (null for raw); name; }.
  placeholdersIn = content:
    map
      (m: {
        text = "<nixseal:${toString (lib.head m)}${lib.elemAt m 2}>";
        format = lib.elemAt m 1;
        name = lib.elemAt m 2;
      })
      (filter isList (builtins.split "<nixseal:(([^:>\n]*):)?([^>\n]*)>" content));

  # `extra`: units to restart besides the entry's own (inferred ones),
  # unless the entry reloads them.
  withRestarts = own: reload: extra:
    if extra == [ ] then own else lib.unique (own ++ filter (u: !lib.elem u reload) extra);

  # NixOS's secrets may be systemd credentials (../security/credentials.nix;
  # the home-manager module's have no such fields): systemd copies a
  # credential when its unit starts, so a changed value restarts the units
  # given it, and a sealed one names the id the helper seals it with.
  sealed = s: s.sealCredential or false;
  secretEntry = extra: s: {
    inherit (s) name path mode owner group reloadUnits format;
    # The rules secret whose file this is: what `nixseal status` compares.
    document = s.document or s.name;
    key = let segments = keySegments s.key; in if segments == null then [ s.key ] else segments;
    file = fileString s.file;
    # A credential is copied at start only: restarted even when reloadUnits
    # lists the unit too.
    restartUnits = withRestarts
      (if s.credentialFor or [ ] == [ ] then s.restartUnits else lib.unique (s.restartUnits ++ s.credentialFor))
      s.reloadUnits
      (extra.${s.name} or [ ]);
    seal = if sealed s then s.credentialName else null;
  };

  # What an age file holds: the value (binary) or a document of values.
  documentFormats = [ "binary" "json" "yaml" "toml" "dotenv" "ini" ];

  # A secret's `key` as the manifest's list of segments: split on "/",
  # with "\/" a slash and "\\" a backslash inside a segment; null when
  # malformed (an empty segment, any other backslash).
  keySegments = key:
    if key == "" then
      [ ]
    else
      let
        step = acc: part:
          if builtins.isList part then
            let m = lib.head part; in
            if m == "/" then acc // { done = acc.done ++ [ acc.cur ]; cur = ""; }
            else if m == "\\/" then acc // { cur = acc.cur + "/"; }
            else if m == "\\\\" then acc // { cur = acc.cur + "\\"; }
            else acc // { bad = true; }
          else if lib.hasInfix "\\" part then
            acc // { bad = true; }
          else
            acc // { cur = acc.cur + part; };
        r = lib.foldl' step { done = [ ]; cur = ""; bad = false; } (builtins.split "(\\\\.|/)" key);
        segments = r.done ++ [ r.cur ];
      in
      if r.bad || lib.elem "" segments then null else segments;

  # How many segments a key of a format has, where it is fixed.
  keyLength = { ini = 2; dotenv = 1; };

  # Messages for secrets whose key cannot be taken from their file.
  keyProblems = secrets:
    concatMap
      (s:
        let
          option = "nixseal.secrets.\"${s.name}\"";
          segments = keySegments s.key;
        in
        if s.key == "" then
          [ ]
        else if s.format == "binary" then
          [ "${option}.key: \"${s.key}\" is set but ${option}.format is \"binary\", a file without keys: set format (or format in [secrets.\"${s.document}\"] of the rules file) to the document's, or key = \"\" for the whole file" ]
        else if segments == null then
          [ "${option}.key: \"${s.key}\" is not a key: segments joined by \"/\", none empty, with \"\\/\" for a \"/\" and \"\\\\\" for a backslash inside one" ]
        else if keyLength ? ${s.format} && length segments != keyLength.${s.format} then
          [ "${option}.key: \"${s.key}\" has ${toString (length segments)} segments; a key of a ${s.format} document has ${toString keyLength.${s.format}} (ini: section/option; dotenv: the variable's name)" ]
        else
          [ ])
      secrets;

  templateContent = t:
    if t.content != null then
      t.content
    else if t.file != null then
      builtins.readFile t.file
    else
      "";

  templateEntry = extra: t: {
    inherit (t) name path mode owner group reloadUnits;
    restartUnits = withRestarts t.restartUnits t.reloadUnits (extra.${t.name} or [ ]);
    content = templateContent t;
  };
in
rec {
  inherit placeholderFor placeholderFormats typedPlaceholderFor fileString goodName goodPath placeholdersIn
    documentFormats keySegments;

  # Where the NixOS module installs the secrets needed to create users
  # (neededForUsers), from a manifest of their own.
  forUsersDir = "/run/secrets-for-users";

  # A template's default path is <symlinkPath>/<renderedDir>/<name>.
  renderedDir = "rendered";

  # settings: mountPoint symlinkPath keepGenerations useTmpfs identityPaths
  # userMode platform ("linux", or "darwin": a RAM disk instead of a ramfs,
  # launchd labels instead of systemd units), and systemdCreds (the program, read only when a secret is
  # sealed); secrets and templates: lists of evaluated entries; restarts:
  # units to restart besides their own, by `secrets` and `templates` and
  # then by name (nixseal.inferredRestartUnits).
  build = { settings, secrets, templates ? [ ], restarts ? { } }: {
    version = 1;
    inherit (settings) mountPoint symlinkPath keepGenerations useTmpfs userMode platform;
    # NixOS's restart lists (/run/nixos/activation-restart-list) are
    # deprecated (switch-to-configuration warns; gone in NixOS 26.11): the
    # helper signals units with systemctl, after the switch in script mode
    # too (nixseal-restart-units.service).
    restartListPath = null;
    reloadListPath = null;
    # Never copy a private key into the store: identities stay strings.
    identityPaths = map toString settings.identityPaths;
    secrets = map (secretEntry (restarts.secrets or { })) secrets;
    templates = map (templateEntry (restarts.templates or { })) templates;
    placeholders = listToAttrs (map (s: nameValuePair s.name (placeholderFor s.name)) secrets);
    systemdCreds = if lib.any sealed secrets then settings.systemdCreds or null else null;
  };

  # The manifest as a file in the store. With `check` ({ package, hostKey
  # }), the build runs `nixseal check-manifest` on it, so that it fails
  # when the manifest is malformed or a file is unreadable or not encrypted
  # to `hostKey` (an ssh public key, or null).
  toFile = { pkgs, name, manifest, check ? null }:
    if check == null then
      pkgs.writeText name (builtins.toJSON manifest)
    else
      pkgs.runCommand name
        {
          manifest = builtins.toJSON manifest;
          passAsFile = [ "manifest" ];
        }
        ''
          ${check.package}/bin/nixseal check-manifest "$manifestPath"${lib.optionalString (check.hostKey != null) " --host-key ${lib.escapeShellArg check.hostKey}"}
          cp "$manifestPath" "$out"
        '';

  # Messages for entries whose name or path is unsafe. `kind` is the option
  # set ("nixseal.secrets"), `entries` evaluated submodule values.
  hostileProblems = { kind, entries, allowRuntimeDir ? false }:
    concatMap
      (e:
        if goodName e.name && goodPath allowRuntimeDir e.path then
          [ ]
        else
          lib.optional (!goodName e.name) "${kind}.\"${e.name}\".name: \"${e.name}\" is not a safe secret name: use relative paths of [A-Za-z0-9._-] segments joined by \"/\", without \".\" or \"..\" segments"
          ++ lib.optional (!goodPath allowRuntimeDir e.path) "${kind}.\"${e.name}\".path: \"${e.path}\" is not a safe path: use an absolute path${lib.optionalString allowRuntimeDir " (or one starting with %r/)"} without empty, \".\" or \"..\" segments, newlines or a trailing \"/\"")
      entries;

  # Messages naming every path claimed by more than one secret or template
  # (evaluated submodule values; templates are told apart by `content`).
  duplicatePathProblems = entries:
    let
      dups = filterAttrs (_: es: length es > 1) (groupBy (e: e.path) entries);
      option = e: "nixseal.${if e ? content then "templates" else "secrets"}.\"${e.name}\".path";
    in
    map
      (path: "nixseal: path \"${path}\" is used by ${lib.concatMapStringsSep " and " option dups.${path}}: give each its own path")
      (attrNames dups);

  # Messages naming entries of one manifest that share a name (a secret's
  # `name` may differ from its attribute name). kind: "secrets" or "templates".
  duplicateNameProblems = kind: entries:
    let
      dups = filterAttrs (_: es: length es > 1) (groupBy (e: e.name) entries);
    in
    map
      (name: "nixseal.${kind}: ${toString (length dups.${name})} entries are named \"${name}\": give each its own nixseal.${kind}.<name>.name")
      (attrNames dups);

  # Messages for templates whose placeholders name secrets not in `known`
  # (an attrset of secret names) or a format that does not exist.
  templateProblems = { kind, templates, known }:
    let
      formats = lib.genAttrs placeholderFormats (_: true);
      problem = t: p:
        if p.format != null && !(formats ? ${p.format}) then
          [ "${kind}.\"${t.name}\": placeholder ${p.text} has an unknown format \"${p.format}\": use one of ${lib.concatStringsSep ", " placeholderFormats}, or <nixseal:${p.name}> for the value as it is" ]
        else if !(known ? ${p.name}) then
          [ "${kind}.\"${t.name}\": placeholder for \"${p.name}\" names no secret of this manifest: declare nixseal.secrets.\"${p.name}\" (not neededForUsers) or remove the placeholder" ]
        else
          [ ];
    in
    concatMap
      (t:
        concatMap (problem t) (placeholdersIn (templateContent t))
        ++ lib.optional ((t.content == null) == (t.file == null)) "${kind}.\"${t.name}\": set exactly one of content and file")
      templates;

  # The checks of secrets and templates both modules make, as messages;
  # `known`: the placeholders templates may use.
  entryProblems = { secrets, templates, known, allowRuntimeDir ? false }:
    hostileProblems { kind = "nixseal.secrets"; entries = secrets; inherit allowRuntimeDir; }
    ++ hostileProblems { kind = "nixseal.templates"; entries = templates; inherit allowRuntimeDir; }
    ++ duplicatePathProblems (secrets ++ templates)
    ++ keyProblems secrets
    ++ duplicateNameProblems "secrets" secrets
    ++ duplicateNameProblems "templates" templates
    ++ templateProblems { kind = "nixseal.templates"; inherit templates known; };
}
