"""systemd units read from files, the way systemd itself would see them — without systemctl,
which cannot answer when systemd is not PID 1 (containers, a mounted disk, a fixture tree).

One concern per module, top to bottom:
- `syntax`: the unit file syntax (`parse_unit`, `UnitFile`): pure;
- `tree`: loading a tree (`load_tree`): the unit search path, fragments, masks, aliases,
  drop-ins and every `.wants/`/`.requires/`/`.upholds/` link, read once through `RootFS`;
- `dbus`: D-Bus activation files (what starts a unit on a bus call);
- `enablement`: `is_enabled`, as `systemctl is-enabled` would say: pure on the `UnitTree`;
- `startup`: `boot_units` and `started_by`, what starts a unit whatever is-enabled says: pure;
- `status`: `unit_status`, the two put together as an operator reads them.
"""
