# shellcheck shell=bash
# Installs the system packages Herald needs, only those that are missing: a second run installs
# nothing and does not touch the network. Sourced by scripts; `scripts/install-deps` runs it.
#
#   rabbitmq-server       the broker (started by scripts/services, not by the package)
#   postgresql-15         the store (ditto); brings postgresql-client-15 (psql, pg_isready)
#   librabbitmq-dev       rabbitmq-c, wrapped by Sources/CRabbitMQShim (pkg-config: librabbitmq)
#   libcurl4-openssl-dev  libcurl, wrapped by Sources/CCurlShim
#   pkg-config            how SwiftPM finds the two C libraries' flags
#   hey                   HTTP load generator, for scripts/load
#   curl iproute2         readiness checks (curl) and port checks (ss)
#   prometheus prometheus-alertmanager
#                         promtool and the servers scripts/check-observability runs (alert rules,
#                         live /metrics, the alert → Herald → notification path)
#   python3-venv          only when python3 cannot make a venv (scripts/test's provider stand-ins)
#   postfix openssl       the real SMTP server of the mail tests and its test certificates
#                         (scripts/lib/postfix.sh; the package's own daemon is never started)

# shellcheck source=scripts/lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

HERALD_APT_PACKAGES=(
  rabbitmq-server
  postgresql-15
  librabbitmq-dev
  libcurl4-openssl-dev
  pkg-config
  hey
  curl
  iproute2
  postfix
  openssl
  prometheus
  prometheus-alertmanager
)

# deb_installed PKG: true when dpkg has PKG fully installed (not just its config files left).
deb_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == "installed" ]]
}

herald_install_deps() {
  local missing=() pkg
  for pkg in "${HERALD_APT_PACKAGES[@]}"; do
    deb_installed "$pkg" || missing+=("$pkg")
  done
  # scripts/test makes a venv: Debian's own python3 needs python3-venv for that (a pyenv or
  # /usr/local Python has it built in).
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi

  if ((${#missing[@]} > 0)); then
    [[ "$(id -u)" == 0 ]] || die "missing packages (${missing[*]}) and not root: install them with sudo apt-get install ${missing[*]}"
    say "installing missing packages: ${missing[*]}"
    # Postfix asks how it is used: a local-only system MTA (Herald runs its own instance).
    printf '%s\n' "postfix postfix/main_mailer_type select Local only" "postfix postfix/mailname string localhost" \
      | debconf-set-selections
    apt-get -o DPkg::Lock::Timeout=600 update -qq \
      || die "apt-get update failed"
    # policy-rc.d on these machines keeps packages from starting their daemons: we start our own.
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" \
      || die "apt-get install ${missing[*]} failed"
  else
    say "system packages: all present"
  fi

  command -v swift >/dev/null 2>&1 \
    || die "swift not found on PATH nor in /opt/swift/usr/bin: install the Swift 6 toolchain"
  [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]] \
    || die "PostgreSQL 15 binaries not found in /usr/lib/postgresql/15/bin"
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] \
    || die "RabbitMQ not found in /usr/lib/rabbitmq/bin"
}
