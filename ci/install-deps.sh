#!/bin/bash
# Install the Debian packages the tests and benchmarks use, on a fresh Debian 12 machine,
# as root. Idempotent: when everything is present it only checks and returns.
#
#   icinga2-bin                        probes/tests/icinga.rs (a real Icinga 2 runs the probes),
#                                      ci/icinga-zones.sh (a master and two satellite zones)
#   openssl                            the zones' CA and node certificates (ci/icinga-zones.sh)
#   monitoring-plugins-basic           harness/tests/it/demo.rs (check_http, check_tcp as externals)
#   python3-venv                       ci/producers (cloud-info-provider and cASO from PyPI),
#                                      ci/peers/azure.sh (azure-identity + azure-mgmt-compute)
#                                      ci/peers/gce.sh (google-api-python-client for the GCE fixture)
#                                      ci/peers/im.sh (the Infrastructure Manager from PyPI, Python >= 3.10)
#                                      ci/peers/moto.sh (moto + botocore from PyPI)
#   libxml2-utils                      xmllint, for JUnit / XML output checks
#   prometheus                         promtool, for OpenMetrics output checks; a real
#                                      Prometheus scraping `fedprobe serve` (harness serve.rs)
#   chromium                           HTML report checks
#   hyperfine, time                    ci/bench.sh (start-up, peak RSS)
#   ldap-utils slapd glue-schema       a real BDII for check_glue
#   apache2 libapache2-mod-auth-openidc rabbitmq-server   the OpenStack peers (ci/peers)
#   rpm rpmlint                        `rpm -qpl` and rpmlint on the .rpm (ci/package-test.sh)
#   libapache2-mod-auth-mellon xmlsec1 the SAML2 ECP peers (ci/peers/saml.sh)
#
# Quiet: apt's output goes to a log, shown only when something fails.
set -euo pipefail

PKGS="icinga2-bin monitoring-plugins-basic libxml2-utils prometheus chromium hyperfine time
      ldap-utils slapd glue-schema apache2 libapache2-mod-auth-openidc rabbitmq-server
      python3-venv rpm rpmlint libapache2-mod-auth-mellon xmlsec1 openssl"
LOG=${FEDPROBE_DEPS_LOG:-/tmp/fedprobe-install-deps.log}
t0=$(date +%s%N)

say() { echo "[install-deps] $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "not root: cannot apt-get install; tests that need these packages will skip"
  exit 1
fi

# apt must never start the distribution's daemons (they would listen on every interface).
if ! grep -qx 'exit 101' /usr/sbin/policy-rc.d 2>/dev/null; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
fi
chmod 755 /usr/sbin/policy-rc.d

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done

if [ -n "$missing" ]; then
  say "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  : > "$LOG"
  # Another apt may be running (peers' install.sh): wait for its lock instead of failing.
  if ! apt-get -q -o DPkg::Lock::Timeout=600 update >> "$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    say "FAILED: apt-get update (full log: $LOG)"
    exit 1
  fi
  # shellcheck disable=SC2086
  if ! apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 $missing >> "$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    say "FAILED: apt-get install$missing (full log: $LOG)"
    exit 1
  fi
fi

# pyone (PyPI) in its venv: the OpenNebula fixture and its drift check
bash "$(dirname "$0")/peers/opennebula.sh" install >&2 || { say "FAILED: ci/peers/opennebula.sh install"; exit 1; }

ms=$(( ($(date +%s%N) - t0) / 1000000 ))
say "ok in $((ms / 1000)).$((ms % 1000 / 100))s${missing:+ (installed:$missing)}"
