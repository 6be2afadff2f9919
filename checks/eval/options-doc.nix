# docs/options.md, generated from the modules' option declarations.
# Regenerate with checks/eval/gen-options-doc (never edit docs/options.md).
{ lib-path ? builtins.getEnv "NIXPKGS_LIB" }:
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

  darwin = harness.evalDarwin { };

  relative = file: lib.removePrefix "${repoRoot}/" (toString file);

  # Module arguments an example may use. Such an example is not a whole
  # Nix expression on its own, and docs/options.md promises that every
  # code block is (the documentation tests parse them): it is shown as the
  # module that sets the option, `<name>` standing for an example name.
  moduleArgs = [ "config" "lib" "pkgs" "options" ];
  usedArgs = text: lib.filter (arg: lib.hasInfix "${arg}." text) moduleArgs;
  asModule = o: text:
    let
      attr = lib.replaceStrings [ "<name>" ] [ ''"example"'' ] o.name;
      body = lib.concatStringsSep "\n  " (lib.splitString "\n" (lib.removeSuffix "\n" text));
    in
    "{ ${lib.concatStringsSep ", " (usedArgs text)}, ... }:\n{\n  ${attr} = ${body};\n}";

  # literalExpression: Nix code; literalMD: prose. Returned with what
  # follows the item's label: inline text or a code block.
  render = o: value:
    if value._type == "literalMD" then
      " ${value.text}"
    else if lib.hasInfix "\n" value.text then
      let
        code = if usedArgs value.text == [ ] then lib.removeSuffix "\n" value.text else asModule o value.text;
      in
      "\n\n```nix\n${code}\n```\n"
    else
      " `${value.text}`";

  # A pattern in a type's description is code: as text, Markdown would
  # read `[.](service|...)` as a link.
  typeText = t:
    let
      m = builtins.match "(.* matching the pattern )(.*)" t;
    in
    if m == null then t else "${lib.head m}`${lib.last m}`";

  option = o:
    lib.concatStringsSep "\n" (
      [
        "### `${o.name}`"
        ""
        (lib.removeSuffix "\n" o.description)
        ""
        "- Type: ${typeText o.type}"
      ]
      ++ lib.optional (o ? default) "- Default:${render o o.default}"
      ++ lib.optional (o ? example) "- Example:${render o o.example}"
      ++ lib.optional o.readOnly "- Read-only"
      ++ lib.optional (o.declarations != [ ])
        "- Declared in: ${lib.concatMapStringsSep ", " (f: "`${relative f}`") o.declarations}"
      ++ [ "" ]
    );

  # What the options do not show: when the module installs secrets.
  nixosIntro = ''
    Import `nixosModules.nixseal` (the module `modules/security`).

    When secrets are installed (`nixseal.activation`):

    - `systemd` (the default): `nixseal-install.service`, a oneshot unit
      without default dependencies, wanted by and ordered before
      `sysinit.target` (so no ordinary service starts without its secrets),
      after `local-fs.target` and, when they are enabled, `userborn.service`
      or `systemd-sysusers.service` (so owners exist), and waiting for the
      file systems of `nixseal.identityPaths` (`RequiresMountsFor`). A
      switch to a new manifest restarts it (`restartTriggers`), ordered by
      `sysinit-reactivation.target` before the restarts of other services.
      Changed secrets' `restartUnits` and `reloadUnits` are signalled with
      `systemctl --no-block try-restart` and `try-reload-or-restart`.
    - `script`: the activation snippet `nixseal`, after `specialfs`,
      `users`, `groups` and `etc`, with dry activation (`nixos-rebuild
      dry-activate` runs `nixseal install --dry-run`, which changes
      nothing). The snippet runs before `switch-to-configuration` reloads
      systemd, so changed secrets' units stay pending and
      `nixseal-restart-units.service` (restarted by a new manifest, after
      the reload) signals them with `systemctl`; NixOS's deprecated
      restart lists are not used.
    - `neededForUsers` secrets (user passwords) have their own manifest,
      installed under `/run/secrets-for-users` before users are created:
      by `nixseal-install-for-users.service`, ordered before
      `userborn.service` or `systemd-sysusers.service` (and so before
      `local-fs.target`: its keys must be on file systems the initrd
      mounts, `fileSystems.<path>.neededForBoot`), or, where the
      activation script creates users, by the snippet `nixsealForUsers`,
      which `users` depends on (in both modes). A changed password
      restarts `userborn.service`, which applies it; systemd-sysusers
      never changes an existing user's password (the build warns).

    Keys at first boot: a key must be on the machine before its first
    boot, since sshd generates missing host keys only when it starts,
    after the secrets are installed. Where the activation script creates
    users, `nixsealForUsers` runs before `/etc` is populated, so a key
    placed with `environment.etc` is missing at first boot; the build
    warns when every identity path is such a key. Keep one key outside
    `environment.etc`, or use userborn or systemd-sysusers.
  '';

  darwinIntro = ''
    Import `darwinModules.nixseal` (the module `modules/darwin`) in a
    nix-darwin configuration; [nix-darwin](darwin.md) has an example.
    `nixseal.secrets` and `nixseal.templates` mean what they mean on
    NixOS, but for `restartUnits` and `reloadUnits`, which name launchd
    jobs by label (`org.nixos.<name>` for nix-darwin's
    `launchd.daemons.<name>`), and `group`, which defaults to the owner's
    primary group. Not declared, as macOS has no counterpart:
    `neededForUsers`, the systemd credentials (`credentialFor`,
    `sealCredential`, `credentialName`), `nixseal.activation`,
    `nixseal.inferRestarts`, `nixseal.useTmpfs` and the readiness target.

    When secrets are installed: at boot by the launchd daemon
    `org.nixos.nixseal-install` (`RunAtLoad`, output in
    `nixseal.logFile`), and on `darwin-rebuild switch` by the activation
    script, right after its `users` step (users and groups exist) and
    before its `launchd` step (services reload with their secrets in
    place). Generations live on a RAM disk mounted on `nixseal.mountPoint`;
    changed secrets' jobs are restarted with `launchctl kickstart -k
    system/<label>`.
  '';

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
  (section "NixOS module" nixosIntro (docsOf nixos))
  (section "home-manager module"
    "Import the flake's home-manager module (the module `modules/home-manager`) in a user's configuration. Paths may start with `%r`, the user's `$XDG_RUNTIME_DIR` (on macOS, the user's temporary directory, `getconf DARWIN_USER_TEMP_DIR`, where `mountPoint` gets a RAM disk of the user's own). The user unit `nixseal.service` (wanted by `default.target`) installs the secrets with the user's own keys at login and when a switch changes the manifest; order user services that read them `After=nixseal.service`. On macOS the launchd agent `org.nix-community.home.nixseal` (`RunAtLoad`) does, and `restartUnits` name the user's launchd agents by label."
    (docsOf home)
  )
  (section "nix-darwin module" darwinIntro (docsOf darwin))
]
