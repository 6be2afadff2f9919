# Reads the rules file (secrets.toml, v1) at evaluation time and answers
# which secrets it gives a host or a user. The Python rules parser is the
# authority on a rules file's validity (`nixseal check`); this reads only the
# tables that decide who may decrypt what, so a build can fail early with a
# message naming the secret, the host and the fix.
{ lib }:
let
  inherit (lib) hasPrefix removePrefix concatMap attrNames filterAttrs elem genAttrs optional
    filter imap0 listToAttrs nameValuePair;

  read = rulesPath: builtins.fromTOML (builtins.readFile rulesPath);

  # Generator kinds whose value has a public half (`<name>.pub`).
  keyPairKinds = [ "ssh-ed25519" "age" "wireguard" "ca" "cert" ];

  # Where a generator's outputs go, as the CLI's Rules.outputs_of says:
  # the names whose `.age` (secret) and `.pub` (public) files hold them.
  # The first of each is the secret's own name, the others <name>.<output>.
  outputsOf = name: secret:
    let
      given = secret.generator or null;
      gen = if builtins.isString given then { kind = given; } else given;
      kind = gen.kind or (if gen ? command then "command" else null);
      named = imap0 (i: o: if i == 0 then name else "${name}.${o}");
    in
    if gen == null then
      { secret = [ ]; public = [ ]; }
    else if kind == "command" then
      {
        secret = named (filter (o: !elem o (gen.public or [ ])) (gen.outputs or [ ]));
        public = named (gen.public or [ ]);
      }
    else
      {
        secret = [ name ];
        public = if kind == "htpasswd" then (if gen.public or false then [ name ] else [ ])
          else if elem kind keyPairKinds then [ name ] else [ ];
      };

  # The rules' secrets and the further secret outputs of their generators,
  # which have the readers of the secret whose generator makes them.
  secretsOf = rules:
    let
      secrets = rules.secrets or { };
      further = name: lib.drop 1 (outputsOf name secrets.${name}).secret;
    in
    secrets // listToAttrs (concatMap (name: map (o: nameValuePair o secrets.${name}) (further name)) (attrNames secrets));

  # "@web" stands for the hosts of [groups] web; a group may name other
  # groups, as the CLI allows (it rejects cycles; `seen` stops them here too).
  expandHosts = rules: secretName: entries:
    let
      expand = seen: entry:
        if hasPrefix "@" entry then
          let
            group = removePrefix "@" entry;
            members = rules.groups.${group} or (throw "nixseal: rules file: [secrets.\"${secretName}\"] hosts names unknown group \"@${group}\" (no [groups] ${group})");
          in
          if elem group seen then
            throw "nixseal: rules file: [groups] ${group}: group cycle; run `nixseal check` for details"
          else
            concatMap (expand (seen ++ [ group ])) members
        else
          [ entry ];
    in
    concatMap (expand [ ]) entries;

  # One pass over all secrets: the names whose recipients include `who`.
  namesFor = recipients: all: who:
    attrNames (filterAttrs (name: s: elem who (recipients name s)) all);
in
{
  inherit read outputsOf;

  # The rules as a module's nixseal.rules gives them: null without a file.
  of = rulesPath: if rulesPath == null then null else read rulesPath;

  # Messages for the declared secrets whose file is the rules' own
  # (`<rules dir>/<document>.age`, the document being the secret's name
  # unless it takes a key of another's file; a secret with a file of its own is not the
  # rules' business) and that the rules do not give `who` (what `forHost`
  # or `forUser` says), none without a rules file. The messages, worded
  # for a host or a user: `unknown`, when the rules do not name `who` at
  # all; `notGiven secret`, and `notInRules secret` when the rules do not
  # have the secret at all.
  problems = { rulesPath, who, secrets, unknown, notGiven, notInRules ? notGiven }:
    let
      fromRules = builtins.filter (s: s.file == dirOf rulesPath + "/${s.document}.age") secrets;
    in
    if rulesPath == null then
      [ ]
    else
      optional (fromRules != [ ] && !who.known) unknown
      ++ concatMap (s: optional (!(who.given ? ${s.document})) (if who.inRules s.document then notGiven s else notInRules s)) fromRules;

  # Everything a NixOS host needs to know from the rules.
  forHost = rules: host:
    let
      all = secretsOf rules;
      names = namesFor (name: s: expandHosts rules name (s.hosts or [ ])) all host;
      key = rules.hosts.${host}.key or null;
    in
    {
      inherit names key;
      known = rules ? hosts && rules.hosts ? ${host};
      given = genAttrs names (_: true);
      inRules = name: all ? ${name};
      sshKey = if key != null && hasPrefix "ssh-" key then key else null;
    };

  # Everything a home-manager user needs to know from the rules.
  forUser = rules: user:
    let
      all = secretsOf rules;
      names = namesFor (_: s: s.users or [ ]) all user;
    in
    {
      inherit names;
      known = rules ? users && rules.users ? ${user};
      given = genAttrs names (_: true);
      inRules = name: all ? ${name};
    };
}
