"""systemd unit analysis read from files: syntax, search path, masking, drop-ins,
`systemctl is-enabled`, what starts a unit anyway, and path conditions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagger.doctor.conditions import (
    HostImage,
    classify_host,
    conditions_met,
    evaluate_condition,
    parse_os_release,
    probe_path,
    read_host_image,
    read_only_reason,
    unit_conditions,
)
from stagger.doctor.rootfs import RootFS
from stagger.doctor.units.dbus import load_dbus_activations
from stagger.doctor.units.enablement import EnabledState, is_enabled
from stagger.doctor.units.startup import StartKind, boot_units
from stagger.doctor.units.status import unit_status
from stagger.doctor.units.syntax import UnitFile, parse_unit
from stagger.doctor.units.tree import load_tree, search_path

FIXTURES = Path(__file__).parents[1] / "fixtures" / "doctor"


class Link(str):
    """A symlink to create, pointing at this target."""


def make_tree(root: Path, files: dict[str, str]) -> RootFS:
    for rel, content in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            os.symlink(str(content), path)
        else:
            path.write_text(content)
    return RootFS.at(root)


SERVICE = "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n"
INSTALLABLE = SERVICE + "[Install]\nWantedBy=multi-user.target\n"


def status(fs: RootFS, name: str):  # type: ignore[no-untyped-def]
    tree = load_tree(fs)
    return unit_status(tree, name, boot_units(tree), load_dbus_activations(fs))


# ------------------------------------------------------------------------------------ syntax


def test_sections_keys_and_comments_are_parsed() -> None:
    text = "# head\n[Unit]\n; note\nDescription = Update Engine \n\n[Service]\nType=dbus\n"
    got = [(a.section, a.key, a.value) for a in parse_unit(text)]
    assert got == [("Unit", "Description", "Update Engine"), ("Service", "Type", "dbus")]


def test_a_trailing_backslash_joins_the_next_line_with_a_space() -> None:
    text = "[Service]\nExecStart=/bin/echo a \\\n  b\\\n# skipped comment\n  c\n"
    (a,) = parse_unit(text)
    assert a.value.split() == ["/bin/echo", "a", "b", "c"]


def test_repeated_keys_accumulate_into_a_list() -> None:
    u = UnitFile(parse_unit("[Unit]\nWants=a.service b.service\nWants=c.service\n"))
    assert u.names("Unit", "Wants") == ["a.service", "b.service", "c.service"]


def test_an_empty_assignment_resets_the_list() -> None:
    u = UnitFile(parse_unit("[Unit]\nWants=a.service\nWants=\nWants=b.service\n"))
    assert u.names("Unit", "Wants") == ["b.service"]


def test_the_last_assignment_of_a_single_value_wins() -> None:
    u = UnitFile(parse_unit("[Service]\nType=simple\nType=dbus\n"))
    assert u.last("Service", "Type") == "dbus"


def test_lines_outside_a_section_or_without_equals_are_ignored() -> None:
    assert parse_unit("Key=before\n[Unit]\nnot an assignment\n") == ()


@given(st.lists(st.sampled_from(["", "a", "b", "c"]), max_size=12))
def test_values_are_exactly_those_after_the_last_empty_assignment(values: list[str]) -> None:
    text = "[Unit]\n" + "".join(f"Wants={v}\n" for v in values)
    expected = values[len(values) - values[::-1].index("") :] if "" in values else values
    assert UnitFile(parse_unit(text)).values("Unit", "Wants") == expected


# ----------------------------------------------------------------------- search path, loading


def test_usr_lib64_is_searched_only_where_it_exists(tmp_path: Path) -> None:
    fs = make_tree(tmp_path, {"/usr/lib/systemd/system/a.service": SERVICE})
    assert "/usr/lib64/systemd/system" not in search_path(fs)
    (tmp_path / "usr/lib64/systemd/system").mkdir(parents=True)
    assert "/usr/lib64/systemd/system" in search_path(fs)


def test_search_path_puts_etc_before_run_before_vendor(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/etc/systemd/system/x.service": SERVICE,
            "/run/systemd/system/x.service": SERVICE,
            "/usr/local/lib/systemd/system/x.service": SERVICE,
            "/usr/lib/systemd/system/x.service": SERVICE,
        },
    )
    assert search_path(fs) == (
        "/etc/systemd/system",
        "/run/systemd/system",
        "/usr/local/lib/systemd/system",
        "/usr/lib/systemd/system",
    )
    assert load_tree(fs).units["x.service"].path == "/etc/systemd/system/x.service"


def test_a_merged_usr_lib_is_searched_once(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path, {"/usr/lib/systemd/system/a.service": SERVICE, "/lib": Link("usr/lib")}
    )
    assert search_path(fs) == ("/usr/lib/systemd/system",)


def test_the_seed_unit_is_loaded_from_usr_lib64() -> None:
    tree = load_tree(RootFS.at(FIXTURES / "coreos"))
    unit = tree.units["update-engine.service"]
    assert unit.path == "/usr/lib64/systemd/system/update-engine.service"
    assert unit.unit.last("Service", "BusName") == "com.coreos.update1"


# ------------------------------------------------------------------------------------ drop-ins


def test_dropins_apply_in_file_name_order_across_directories(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": SERVICE + "Environment=X=vendor\n",
            "/usr/lib/systemd/system/a.service.d/20-b.conf": "[Service]\nEnvironment=X=20\n",
            "/etc/systemd/system/a.service.d/10-a.conf": "[Service]\nEnvironment=X=10\n",
        },
    )
    unit = load_tree(fs).units["a.service"]
    assert unit.dropins == (
        "/etc/systemd/system/a.service.d/10-a.conf",
        "/usr/lib/systemd/system/a.service.d/20-b.conf",
    )
    assert unit.unit.values("Service", "Environment") == ["X=vendor", "X=10", "X=20"]


def test_a_dropin_in_etc_replaces_the_vendor_dropin_of_the_same_name(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": SERVICE,
            "/usr/lib/systemd/system/a.service.d/50-x.conf": "[Unit]\nWants=vendor.service\n",
            "/etc/systemd/system/a.service.d/50-x.conf": "[Unit]\nWants=admin.service\n",
        },
    )
    assert load_tree(fs).units["a.service"].unit.names("Unit", "Wants") == ["admin.service"]


def test_a_dropin_linked_to_dev_null_is_masked(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": SERVICE,
            "/usr/lib/systemd/system/a.service.d/50-x.conf": "[Unit]\nWants=b.service\n",
            "/etc/systemd/system/a.service.d/50-x.conf": Link("/dev/null"),
        },
    )
    unit = load_tree(fs).units["a.service"]
    assert unit.dropins == ()
    assert unit.unit.names("Unit", "Wants") == []


def test_an_empty_assignment_in_a_dropin_resets_the_fragments_list(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": "[Unit]\nWants=b.service\n",
            "/etc/systemd/system/a.service.d/override.conf": "[Unit]\nWants=\n",
        },
    )
    assert load_tree(fs).units["a.service"].unit.names("Unit", "Wants") == []


def test_template_and_type_wide_dropins_apply_to_an_instance(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/getty@.service": SERVICE,
            "/usr/lib/systemd/system/getty@.service.d/a.conf": "[Unit]\nWants=t.service\n",
            "/etc/systemd/system/service.d/b.conf": "[Unit]\nWants=all.service\n",
        },
    )
    tree = load_tree(fs, ["getty@tty1.service"])
    assert tree.units["getty@tty1.service"].unit.names("Unit", "Wants") == [
        "t.service",
        "all.service",
    ]


# ---------------------------------------------------------------------------------- is-enabled


def test_a_link_in_etc_makes_a_unit_enabled(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": INSTALLABLE,
            "/etc/systemd/system/multi-user.target.wants/a.service": Link(
                "/usr/lib/systemd/system/a.service"
            ),
        },
    )
    assert is_enabled(load_tree(fs), "a.service") is EnabledState.ENABLED


def test_a_link_in_run_makes_a_unit_enabled_runtime(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": INSTALLABLE,
            "/run/systemd/system/multi-user.target.wants/a.service": Link(
                "/usr/lib/systemd/system/a.service"
            ),
        },
    )
    assert is_enabled(load_tree(fs), "a.service") is EnabledState.ENABLED_RUNTIME


def test_a_vendor_link_leaves_an_installable_unit_disabled(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": INSTALLABLE,
            "/usr/lib/systemd/system/multi-user.target.wants/a.service": Link("../a.service"),
        },
    )
    assert is_enabled(load_tree(fs), "a.service") is EnabledState.DISABLED


def test_a_unit_without_install_rules_is_static(tmp_path: Path) -> None:
    fs = make_tree(tmp_path, {"/usr/lib/systemd/system/a.service": SERVICE})
    assert is_enabled(load_tree(fs), "a.service") is EnabledState.STATIC


def test_a_unit_with_only_also_is_indirect(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path, {"/usr/lib/systemd/system/a.service": SERVICE + "[Install]\nAlso=a.socket\n"}
    )
    assert is_enabled(load_tree(fs), "a.service") is EnabledState.INDIRECT


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("/etc/systemd/system", EnabledState.INDIRECT),
        ("/run/systemd/system", EnabledState.INDIRECT),
        ("/usr/local/lib/systemd/system", EnabledState.DISABLED),
    ],
)
def test_a_unit_linked_only_under_a_name_it_does_not_install_is_indirect(
    tmp_path: Path, where: str, expected: EnabledState
) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": INSTALLABLE,
            f"{where}/other-name.service": Link("/usr/lib/systemd/system/a.service"),
        },
    )
    assert is_enabled(load_tree(fs), "a.service") is expected


def test_an_alias_link_its_install_section_names_makes_it_enabled(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": SERVICE + "[Install]\nAlias=b.service\n",
            "/etc/systemd/system/b.service": Link("/usr/lib/systemd/system/a.service"),
        },
    )
    assert is_enabled(load_tree(fs), "a.service") is EnabledState.ENABLED


def test_an_enabling_link_wins_over_an_unknown_alias(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": INSTALLABLE,
            "/etc/systemd/system/other-name.service": Link("/usr/lib/systemd/system/a.service"),
            "/etc/systemd/system/multi-user.target.wants/a.service": Link(
                "/usr/lib/systemd/system/a.service"
            ),
        },
    )
    assert is_enabled(load_tree(fs), "a.service") is EnabledState.ENABLED


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("/etc/systemd/system/a.service", EnabledState.MASKED),
        ("/run/systemd/system/a.service", EnabledState.MASKED_RUNTIME),
    ],
)
def test_a_link_to_dev_null_masks_a_unit(
    tmp_path: Path, where: str, expected: EnabledState
) -> None:
    fs = make_tree(
        tmp_path, {"/usr/lib/systemd/system/a.service": INSTALLABLE, where: Link("/dev/null")}
    )
    tree = load_tree(fs)
    assert is_enabled(tree, "a.service") is expected
    assert tree.units["a.service"].masked


def test_an_empty_unit_file_is_masked(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {"/usr/lib/systemd/system/a.service": INSTALLABLE, "/etc/systemd/system/a.service": ""},
    )
    assert is_enabled(load_tree(fs), "a.service") is EnabledState.MASKED


def test_a_name_linking_to_another_unit_is_an_alias(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/real.service": INSTALLABLE,
            "/usr/lib/systemd/system/other.service": Link("real.service"),
        },
    )
    tree = load_tree(fs)
    assert is_enabled(tree, "other.service") is EnabledState.ALIAS
    assert tree.units["other.service"].alias_of == "real.service"


def test_a_unit_linked_from_outside_the_search_path_is_linked(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/opt/app/app.service": INSTALLABLE,
            "/etc/systemd/system/app.service": Link("/opt/app/app.service"),
        },
    )
    assert is_enabled(load_tree(fs), "app.service") is EnabledState.LINKED


def test_an_unknown_unit_is_not_found(tmp_path: Path) -> None:
    fs = make_tree(tmp_path, {"/usr/lib/systemd/system/a.service": SERVICE})
    assert is_enabled(load_tree(fs), "b.service") is EnabledState.NOT_FOUND


def test_the_seeds_update_engine_is_disabled_as_systemctl_said() -> None:
    tree = load_tree(RootFS.at(FIXTURES / "coreos"))
    assert is_enabled(tree, "update-engine.service") is EnabledState.DISABLED


# ------------------------------------------------------------------------ started anyway by


def test_seed_update_engine_is_disabled_but_started_anyway_by_link_and_dbus() -> None:
    st_ = status(RootFS.at(FIXTURES / "coreos"), "update-engine.service")
    kinds = {(r.kind, r.by, r.active) for r in st_.started_by}
    assert kinds == {
        (StartKind.LINK, "multi-user.target", True),
        (StartKind.DBUS, "com.coreos.update1", True),
    }
    assert st_.starts
    assert st_.summary().startswith("disabled, started anyway by multi-user.target")
    assert "D-Bus activation of com.coreos.update1" in st_.summary()


def test_a_link_in_a_target_that_does_not_start_is_listed_but_inactive(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": INSTALLABLE,
            "/usr/lib/systemd/system/rescue.target.wants/a.service": Link("../a.service"),
        },
    )
    (reason,) = status(fs, "a.service").started_by
    assert (reason.kind, reason.by, reason.active) == (StartKind.LINK, "rescue.target", False)
    assert not status(fs, "a.service").starts


def test_wants_in_a_unit_that_starts_starts_it(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": SERVICE,
            "/usr/lib/systemd/system/b.service": "[Unit]\nBindsTo=a.service\n" + INSTALLABLE,
            "/etc/systemd/system/multi-user.target.wants/b.service": Link(
                "/usr/lib/systemd/system/b.service"
            ),
        },
    )
    reasons = [r for r in status(fs, "a.service").started_by]
    assert [(r.kind, r.by, r.active) for r in reasons] == [
        (StartKind.DEPENDENCY, "b.service", True)
    ]
    assert "BindsTo=a.service" in reasons[0].detail


@pytest.mark.parametrize("key", ["Wants", "Requires", "BindsTo", "Upholds"])
def test_each_start_dependency_in_a_unit_that_does_not_start_is_inactive(
    tmp_path: Path, key: str
) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": SERVICE,
            "/usr/lib/systemd/system/b.service": f"[Unit]\n{key}=a.service\n" + SERVICE,
        },
    )
    (reason,) = status(fs, "a.service").started_by
    assert (reason.kind, reason.by, reason.active) == (StartKind.DEPENDENCY, "b.service", False)


@pytest.mark.parametrize(
    ("trigger", "content", "kind"),
    [
        ("a.timer", "[Timer]\nOnCalendar=daily\n", StartKind.TIMER),
        ("a.socket", "[Socket]\nListenStream=/run/a.sock\n", StartKind.SOCKET),
        ("a.path", "[Path]\nPathExists=/run/a\n", StartKind.PATH),
    ],
)
def test_an_enabled_trigger_unit_starts_its_service(
    tmp_path: Path, trigger: str, content: str, kind: StartKind
) -> None:
    target = {"a.timer": "timers", "a.socket": "sockets", "a.path": "paths"}[trigger]
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": SERVICE,
            f"/usr/lib/systemd/system/{trigger}": content,
            f"/etc/systemd/system/{target}.target.wants/{trigger}": Link(
                f"/usr/lib/systemd/system/{trigger}"
            ),
        },
    )
    st_ = status(fs, "a.service")
    assert [(r.kind, r.by, r.active) for r in st_.started_by] == [(kind, trigger, True)]
    assert st_.summary().startswith("static, started anyway by")


def test_a_timer_naming_another_unit_triggers_that_unit(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/job.service": SERVICE,
            "/usr/lib/systemd/system/nightly.timer": "[Timer]\nOnCalendar=daily\n"
            "Unit=job.service\n",
        },
    )
    (reason,) = status(fs, "job.service").started_by
    assert (reason.kind, reason.by, reason.active) == (StartKind.TIMER, "nightly.timer", False)
    assert "OnCalendar=daily" in reason.detail


def test_also_in_another_units_install_section_is_reported(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": INSTALLABLE,
            "/usr/lib/systemd/system/b.service": SERVICE + "[Install]\nAlso=a.service\n",
        },
    )
    (reason,) = status(fs, "a.service").started_by
    assert (reason.kind, reason.by, reason.active) == (StartKind.ALSO, "b.service", False)


def test_dbus_activation_via_an_alias_name_counts(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/real.service": "[Service]\nType=dbus\nBusName=org.x\n"
            "[Install]\nAlias=dbus-org.x.service\n",
            "/etc/systemd/system/dbus-org.x.service": Link("/usr/lib/systemd/system/real.service"),
            "/usr/share/dbus-1/system-services/org.x.service": "[D-BUS Service]\nName=org.x\n"
            "Exec=/bin/false\nSystemdService=dbus-org.x.service\n",
        },
    )
    st_ = status(fs, "real.service")
    assert st_.enabled is EnabledState.ENABLED
    assert [(r.kind, r.by) for r in st_.started_by] == [(StartKind.DBUS, "org.x")]


def test_dbus_activation_without_systemd_service_runs_outside_systemd(tmp_path: Path) -> None:
    fs = make_tree(
        tmp_path,
        {
            "/usr/lib/systemd/system/a.service": "[Service]\nType=dbus\nBusName=org.a\n",
            "/usr/share/dbus-1/system-services/org.a.service": "[D-BUS Service]\nName=org.a\n"
            "Exec=/usr/bin/a-daemon\n",
        },
    )
    (reason,) = status(fs, "a.service").started_by
    assert (reason.kind, reason.active) == (StartKind.DBUS_EXEC, True)
    assert "/usr/bin/a-daemon" in reason.detail


def test_a_masked_unit_does_not_start_whatever_wants_it() -> None:
    st_ = status(RootFS.at(FIXTURES / "flatcar"), "locksmithd.service")
    assert st_.masked
    assert not st_.starts
    assert st_.summary() == "masked: nothing can start it"


def test_boot_follows_default_target_alias_and_wants_links() -> None:
    tree = load_tree(RootFS.at(FIXTURES / "coreos"))
    assert tree.default_target == "multi-user.target"
    boot = boot_units(tree)
    assert {"multi-user.target", "locksmithd.service", "update-engine.service"} <= boot


# -------------------------------------------------------------------------------- conditions

COREOS = HostImage("coreos", "CoreOS", True, "os-release ID=coreos")
DEBIAN = HostImage("debian", "Debian", False, "")


def test_the_seed_condition_holds_and_cannot_be_flipped_on_read_only_usr() -> None:
    fs = RootFS.at(FIXTURES / "coreos")
    unit = load_tree(fs).units["update-engine.service"].unit
    results = unit_conditions(unit, lambda p: probe_path(fs, read_host_image(fs), p), "mask it")
    virt, noupdate = results
    assert (virt.evaluated, virt.result, virt.note) == (False, None, "not evaluated")
    assert (noupdate.path, noupdate.negate, noupdate.result) == ("/usr/.noupdate", True, True)
    assert noupdate.can_switch_off is False
    assert noupdate.read_only is not None
    assert "/usr is read-only" in noupdate.read_only
    assert noupdate.advice == "mask it"
    assert conditions_met(results) is None  # the virtualization check is not evaluated


def test_a_condition_under_etc_on_an_image_based_host_can_switch_off(tmp_path: Path) -> None:
    fs = make_tree(tmp_path, {"/etc/x": "1"})
    r = evaluate_condition("ConditionPathExists", "/etc/x", probe_path(fs, COREOS, "/etc/x"))
    assert (r.result, r.read_only, r.can_switch_off) == (True, None, True)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("ConditionPathExists", "/etc/present", True),
        ("ConditionPathExists", "!/etc/present", False),
        ("ConditionPathExists", "/etc/absent", False),
        ("ConditionPathExists", "!/etc/absent", True),
        ("ConditionFileNotEmpty", "/etc/present", True),
        ("ConditionFileNotEmpty", "/etc/empty", False),
        ("ConditionFileNotEmpty", "!/etc/empty", True),
        ("ConditionDirectoryNotEmpty", "/etc/full.d", True),
        ("ConditionDirectoryNotEmpty", "/etc/empty.d", False),
        ("ConditionDirectoryNotEmpty", "/etc/absent", False),
        ("ConditionPathIsReadWrite", "/etc", True),
        ("ConditionPathIsReadWrite", "!/etc", False),
        ("ConditionPathIsDirectory", "/etc/full.d", True),
        ("ConditionPathExistsGlob", "/etc/full.d/*.conf", True),
        ("AssertPathExists", "/etc/absent", False),
    ],
)
def test_path_conditions_are_evaluated_against_the_root(
    tmp_path: Path, key: str, value: str, expected: bool
) -> None:
    fs = make_tree(tmp_path, {"/etc/present": "x", "/etc/empty": "", "/etc/full.d/a.conf": "x"})
    (tmp_path / "etc/empty.d").mkdir()
    path = value.lstrip("!")
    assert evaluate_condition(key, value, probe_path(fs, DEBIAN, path)).result is expected


def test_path_is_read_write_is_false_for_usr_on_an_image_based_host(tmp_path: Path) -> None:
    fs = make_tree(tmp_path, {"/usr/lib/x": "1"})
    r = evaluate_condition("ConditionPathIsReadWrite", "/usr", probe_path(fs, COREOS, "/usr"))
    assert r.result is False


def test_a_read_only_mount_makes_any_path_read_only() -> None:
    assert read_only_reason("/etc/x", DEBIAN, mount_read_only=True) is not None
    assert read_only_reason("/etc/x", DEBIAN, mount_read_only=False) is None
    assert read_only_reason("/usr/.noupdate", DEBIAN, mount_read_only=False) is None


def test_other_conditions_are_listed_as_not_evaluated() -> None:
    r = evaluate_condition("ConditionKernelCommandLine", "quiet", None)
    assert (r.evaluated, r.result) == (False, None)


def test_trigger_conditions_need_one_of_them() -> None:
    def cond(value: str, exists: bool) -> object:
        from stagger.doctor.conditions import PathFacts

        facts = PathFacts(exists, False, exists, False, 1, 0, False, 0, None)
        return evaluate_condition("ConditionPathExists", value, facts)

    assert conditions_met([cond("|/a", False), cond("|/b", True)]) is True  # type: ignore[list-item]
    assert conditions_met([cond("|/a", False), cond("|/b", False)]) is False  # type: ignore[list-item]
    assert conditions_met([cond("/a", False), cond("|/b", True)]) is False  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("os_release", "marker", "image_based"),
    [
        ("ID=coreos\n", None, True),
        ("ID=flatcar\n", None, True),
        ('ID=fedora\nVARIANT_ID="coreos"\n', None, True),
        ("ID=fedora\n", "/run/ostree-booted", True),
        ('ID="rhel"\n', None, False),
        ("ID=debian\n", None, False),
    ],
)
def test_image_based_hosts_are_recognised(
    os_release: str, marker: str | None, image_based: bool
) -> None:
    assert classify_host(parse_os_release(os_release), marker).image_based is image_based


def test_the_fcos_fixture_is_image_based_through_os_release_symlink() -> None:
    image = read_host_image(RootFS.at(FIXTURES / "fcos"))
    assert (image.image_based, image.why) == (True, "os-release VARIANT_ID=coreos")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_an_unreadable_directory_reads_as_empty_instead_of_failing(tmp_path: Path) -> None:
    fs = make_tree(tmp_path, {"/root/kured.yaml": "kind: DaemonSet\n"})
    (tmp_path / "root").chmod(0)
    try:
        assert fs.listdir("/root") == []
        assert not fs.is_file("/root/kured.yaml")
    finally:
        (tmp_path / "root").chmod(0o755)
