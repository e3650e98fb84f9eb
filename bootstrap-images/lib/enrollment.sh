# The factory enrollment directory: agent.yaml (the agent's config), ca.pem (the
# registration service CA) and, for a batch credential, enrollment.secret. Installed
# into /etc/siteboot at build time or injected later (inject-enrollment.sh).
# shellcheck shell=bash

ENROLLMENT_FILES="agent.yaml ca.pem enrollment.secret"

# mode_of NAME: the file mode a enrollment file gets in the image.
mode_of() { case "$1" in enrollment.secret) echo 0600 ;; *) echo 0644 ;; esac; }

# check_enrollment_dir DIR: agent.yaml and ca.pem present, nothing unexpected.
check_enrollment_dir() {
  local dir=$1 f
  [ -d "$dir" ] || die "enrollment $dir: not a directory (expected agent.yaml, ca.pem, enrollment.secret)"
  for f in agent.yaml ca.pem; do
    [ -s "$dir/$f" ] || die "enrollment $dir: missing $f"
  done
  for f in "$dir"/*; do
    case " $ENROLLMENT_FILES " in
      *" $(basename "$f") "*) ;;
      *) die "enrollment $dir: unexpected file $(basename "$f") (allowed: $ENROLLMENT_FILES)" ;;
    esac
  done
}

# install_enrollment_dir DIR DEST: copies the enrollment files with their modes.
install_enrollment_dir() {
  local dir=$1 dest=$2 f
  mkdir -p "$dest"
  for f in $ENROLLMENT_FILES; do
    [ ! -e "$dir/$f" ] || install -m "$(mode_of "$f")" -o 0 -g 0 "$dir/$f" "$dest/$f"
  done
}
