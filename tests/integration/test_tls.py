"""Issue 2, acceptance 6: TLS to a real mosquitto TLS listener with certificates made here by
openssl, without and with a client certificate; a wrong CA is refused with a clear error."""
import os
import subprocess
import unittest

from harness import IntegrationTest, gateway_config, status_pb2, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d):
    """A CA, a broker certificate for 127.0.0.1, a client certificate, and an unrelated CA."""
    os.makedirs(d, exist_ok=True)
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=citygate test {ca}",
                "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who, ext in (("broker", ["-extfile", "san.ext"]), ("gateway", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}", "-keyout", f"{who}.key",
                "-out", f"{who}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", f"{who}.pem", *ext, cwd=d)
    for k in ("ca.key", "other-ca.key", "broker.key", "gateway.key"):
        os.chmod(os.path.join(d, k), 0o600)
    return {k: os.path.join(d, f) for k, f in
            {"ca": "ca.pem", "other_ca": "other-ca.pem", "broker_cert": "broker.pem", "broker_key": "broker.key",
             "gw_cert": "gateway.pem", "gw_key": "gateway.key"}.items()}


class Tls(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.pki = make_pki(self.env.path("pki"))
        self.sim = self.env.modbus({"1": {"hr": {"0": 7}}})

    def run_gateway(self, require_client_cert, tls_block):
        p = self.pki
        broker = self.env.broker(tls={"ca": p["ca"], "cert": p["broker_cert"], "key": p["broker_key"],
                                      "require_certificate": require_client_cert})
        cfg = gateway_config("gw-tls", broker.uri, self.env,
                             f'modbus_bus {{ name: "b" tcp {{ host: "127.0.0.1" port: {self.sim.port} }} '
                             'device { id: "air" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 200 } }',
                             mqtt_extra=tls_block)
        return broker, self.env.gateway(cfg)

    def subscribe(self, broker):
        p = self.pki
        return self.env.subscriber(broker, "gw-tls", tls={"ca": p["ca"], "cert": p["gw_cert"], "key": p["gw_key"]})

    def test_server_authentication_only(self):
        broker, gw = self.run_gateway(False, f'tls {{ ca_file: "{self.pki["ca"]}" }}')
        sub = self.subscribe(broker)
        sub.wait_for(lambda: len(sub.of("air")) >= 2, 20, "readings over TLS")
        self.assertTrue(any(s.state == status_pb2.ONLINE for s in sub.status))

    def test_mutual_tls(self):
        p = self.pki
        broker, gw = self.run_gateway(
            True, f'tls {{ ca_file: "{p["ca"]}" cert_file: "{p["gw_cert"]}" key_file: "{p["gw_key"]}" }}')
        sub = self.subscribe(broker)
        sub.wait_for(lambda: len(sub.of("air")) >= 2, 20, "readings over mutual TLS")

    def test_mutual_tls_without_a_client_certificate_is_refused(self):
        broker, gw = self.run_gateway(True, f'tls {{ ca_file: "{self.pki["ca"]}" }}')
        gw.wait_log("cannot connect to the broker", 20)
        self.assertTrue(gw.process.running(), "the gateway keeps trying; it does not crash")

    def test_wrong_ca_is_refused_with_a_clear_error(self):
        broker, gw = self.run_gateway(False, f'tls {{ ca_file: "{self.pki["other_ca"]}" }}')
        gw.wait_log("cannot connect to the broker", 20)
        line = next(l for l in gw.log().splitlines() if "cannot connect to the broker" in l)
        self.assertRegex(line, r"(?i)certificate verify failed|TLS")
        sub = self.subscribe(broker)
        self.assertEqual(sub.of("air"), [])
        self.assertTrue(gw.process.running())

    def test_key_file_readable_by_others_is_rejected_at_start(self):
        os.chmod(self.pki["gw_key"], 0o644)
        broker, gw = self.run_gateway(
            True, f'tls {{ ca_file: "{self.pki["ca"]}" cert_file: "{self.pki["gw_cert"]}" key_file: "{self.pki["gw_key"]}" }}')
        self.assertEqual(gw.process.wait(15), 78)
        self.assertRegex(gw.log(), r"citygated\.textproto:\d+:\d+: key_file '.*gateway\.key' has mode 0644")


if __name__ == "__main__":
    unittest.main()
