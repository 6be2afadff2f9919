# The testScript of a scenario: the scenario's JSON, and the Python that
# turns each step's words into checks on the VM. The local twins
# (helper/tests/test_twins.py) give the same words the same meaning.
{ lib
, scenario
, node
  # For user scenarios: whose systemd instance, and what `%r` stands for.
, user ? null
, runtimeDir ? "/run/user/0"
}:
''
  import json
  import shlex

  scenario = json.loads(r"""${builtins.toJSON scenario}""")
  machine = ${node}
  USER = ${if user == null then "None" else ''"${user}"''}
  PROFILE = "/nix/var/nix/profiles/system"


  def q(text):
      return shlex.quote(text)


  def expand(path):
      return path.replace("%r", "${runtimeDir}", 1)


  def system_path(name):
      base = "/run/booted-system"
      return base if name == "base" else f"{base}/specialisation/{name}"


  def systemctl(args):
      if USER is None:
          return f"systemctl {args}"
      return f"systemctl --user -M {USER}@ {args}"


  def invocation(unit):
      return machine.succeed(systemctl(f"show -P InvocationID {unit}")).strip()


  def activate():
      return machine.execute(f"{PROFILE}/bin/switch-to-configuration test 2>&1")


  def check_files(where, step):
      for path, want in step.get("files", {}).items():
          p = q(expand(path))
          owner, group, mode = machine.succeed(f"stat -L -c '%U %G %a' {p}").split()
          if "owner" in want:
              assert owner == want["owner"], f"{where}: {path}: owner {owner}"
          if "group" in want:
              assert group == want["group"], f"{where}: {path}: group {group}"
          if "mode" in want:
              assert int(mode, 8) == int(want["mode"], 8), f"{where}: {path}: mode {mode}"
          if "content" in want:
              assert machine.succeed(f"cat {p}") == want["content"], f"{where}: {path}: content"
      for path, target in step.get("links", {}).items():
          machine.succeed(f"test -L {q(path)}")
          got = machine.succeed(f"readlink -f {q(path)}")
          assert got == machine.succeed(f"readlink -f {q(target)}"), f"{where}: {path} -> {got}"


  def check_order(where, first, then):
      done = machine.succeed(systemctl(f"show -P ActiveEnterTimestampMonotonic {first}"))
      began = machine.succeed(systemctl(f"show -P InactiveExitTimestampMonotonic {then}"))
      assert 0 < int(done) <= int(began), f"{where}: {first} must finish before {then} starts"


  def check_login(where, login):
      machine.succeed(f"test -s {q(login['hashFile'])}")
      machine.wait_until_tty_matches("1", "login: ")
      machine.send_chars(login["user"] + "\n")
      machine.wait_until_tty_matches("1", "Password: ")
      machine.send_chars(login["password"] + "\n")
      machine.wait_until_succeeds(f"pgrep -u {login['user']} bash")


  for i, step in enumerate(scenario["steps"]):
      where = f"step {i} ({step['action']} to {step['system']})"
      with subtest(where):
          watched = step.get("restarted", []) + step.get("notRestarted", [])
          before = {unit: invocation(unit) for unit in watched} if i > 0 else {}
          if step["action"] == "boot":
              machine.start()
              machine.wait_for_unit("multi-user.target")
              machine.succeed(f"nix-env -p {PROFILE} --set $(readlink -f {system_path('base')})")
              status, output = 0, ""
          elif step["action"] == "switch":
              machine.succeed(f"nix-env -p {PROFILE} --set $(readlink -f {system_path(step['system'])})")
              status, output = activate()
          else:
              machine.succeed(f"nix-env -p {PROFILE} --rollback")
              now = machine.succeed(f"readlink -f {PROFILE}")
              assert now == machine.succeed(f"readlink -f {system_path(step['system'])}"), where
              status, output = activate()

          failing = step.get("installFails", [])
          if failing:
              assert status != 0, f"{where}: the switch should report the failed secret"
              log = machine.succeed("journalctl -b -u nixseal-install.service")
              for name in failing:
                  assert name in log, f"{where}: {name} not named in the log"
          else:
              assert status == 0, f"{where}: switch failed:\n{output}"

          for unit in step.get("active", []):
              machine.wait_for_unit(unit, USER)
          for unit in step.get("restarted", []):
              machine.wait_until_succeeds(
                  systemctl(f"show -P InvocationID {unit}") + f" | grep -vx -e {q(before[unit])}"
              )
              machine.wait_for_unit(unit, USER)
          for unit in step.get("notRestarted", []):
              assert invocation(unit) == before[unit], f"{where}: {unit} was restarted"
          check_files(where, step)
          for first, then in step.get("order", []):
              check_order(where, first, then)
          if "login" in step:
              check_login(where, step["login"])
''
