# shellcheck shell=bash
# Shared by scripts/test and scripts/setup-databases (sourced, not run): where the servers are,
# how to print a step, and how to install Debian packages.

# The servers the suite uses (see .env.sample). The defaults are what scripts/setup-databases
# sets up on a bare machine.
export PG_DATABASE_URL="${PG_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export MYSQL_DATABASE_URL="${MYSQL_DATABASE_URL:-mysql://root@127.0.0.1:3306/test}"

# say MESSAGE: one line per step or action, so a log shows what was done.
say() { printf '\n==> %s\n' "$*"; }
fail() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Whether this run may install packages and configure servers: root on Debian or Ubuntu.
can_administer() { [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; }

# apt_install PACKAGE...: installs Debian packages without questions. The package lists are
# refreshed only when there are none or the install fails with the ones there are: that saves
# a download on a machine that has them, and lets an install work from apt's cache alone.
apt_install() {
  local install=(apt-get install -y -qq --no-install-recommends "$@")
  export DEBIAN_FRONTEND=noninteractive
  if compgen -G '/var/lib/apt/lists/*_Packages' > /dev/null && "${install[@]}" > /dev/null 2>&1; then
    return 0
  fi
  apt-get update -qq
  "${install[@]}" > /dev/null
}

# parse_url URL: splits scheme://[user[:password]@]host[:port][/database][?options] into
# url_user, url_password, url_host, url_port and url_database (the port empty when not given).
# shellcheck disable=SC2034 # the url_* variables are for the scripts that source this file
parse_url() {
  local rest=${1#*://} authority
  rest=${rest%%\?*}
  authority=${rest%%/*}
  url_database=''
  [[ $rest == */* ]] && url_database=${rest#*/}
  url_user='' url_password=''
  if [[ $authority == *@* ]]; then
    url_user=${authority%@*}
    authority=${authority##*@}
    [[ $url_user == *:* ]] && url_password=${url_user#*:}
    url_user=${url_user%%:*}
  fi
  if [[ $authority == \[* ]]; then # an IPv6 address: [::1]:5432
    url_host=${authority%%]*}
    url_host=${url_host#[}
    authority=${authority#*]}
  else
    url_host=${authority%%:*}
    authority=${authority#"$url_host"}
  fi
  url_port=${authority#:}
}

# The mariadb client's arguments for MYSQL_DATABASE_URL, without the database.
mysql_args() {
  parse_url "$MYSQL_DATABASE_URL"
  printf '%s\n' "--user=${url_user:-root}" "--host=${url_host:-127.0.0.1}" "--port=${url_port:-3306}"
  [ -n "$url_password" ] && printf '%s\n' "--password=$url_password"
  return 0
}
