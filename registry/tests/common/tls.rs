//! Test certificates, made by openssl: a CA and leaves it signs.

use std::path::Path;

fn openssl(args: &[&str], dir: &Path) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Writes `ca.pem` and `ca.key` in `dir`, and for each name a leaf
/// (`<name>.pem`, `<name>.key`) for `san` (e.g. `DNS:reg.test` or
/// `IP:127.0.0.1`) signed by the CA. P-256 keys, valid for a day.
pub fn make_certs(dir: &Path, names: &[&str], san: &str) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem"];
    ca.extend(ec);
    openssl(&ca, dir);
    std::fs::write(dir.join("san.ext"), format!("subjectAltName={san}\n")).unwrap();
    for name in names {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        let mut req = vec!["req", "-subj", "/CN=test leaf", "-keyout", &key, "-out", &csr];
        req.extend(ec);
        openssl(&req, dir);
        let sign =
            ["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "1", "-extfile", "san.ext"];
        let mut sign = sign.to_vec();
        sign.extend(["-out", &pem]);
        openssl(&sign, dir);
    }
}
