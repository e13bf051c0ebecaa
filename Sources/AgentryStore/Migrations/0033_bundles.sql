-- Agent bundles (issue 32): each bundle version installed on this installation, with the archive it came from. The
-- archive is kept (bytea) so that a worker on another host can place the bundle's files from it, checked against the
-- manifest's hashes, without the file the installer read. A version is never changed: installing the same (id,
-- version) again with other bytes is refused; uninstalling marks it `removed` (and deletes its files) so that the
-- history of who installed what stays.
CREATE TABLE installed_bundles (
    bundle_id    text NOT NULL,
    version      text NOT NULL,
    sha256       char(64) NOT NULL,          -- lowercase hex SHA-256 of the archive
    manifest     jsonb NOT NULL,
    signer       text,                       -- the trusted key's line `ed25519 BASE64 comment`; NULL: --allow-unsigned
    archive      bytea NOT NULL,
    directory    text NOT NULL,              -- where the installer placed its files (<bundles-dir>/<id>/<version>)
    installed_at timestamptz NOT NULL DEFAULT now(),
    installed_by text NOT NULL,              -- the CLI's user and host, or the admin API's caller
    state        text NOT NULL DEFAULT 'installed' CHECK (state IN ('installed', 'removed')),
    removed_at   timestamptz,
    PRIMARY KEY (bundle_id, version)
);
