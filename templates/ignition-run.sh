#!/bin/sh
# Rendered by siteboot-provider: the Ignition counterpart of cloud-init runcmd, run once
# by siteboot-bootstrap.service. preCommands and postCommands are the user's shell.
set -e
{%- for c in pre_commands %}
{{ c }}
{%- endfor %}
/bin/sh {{ bootstrap_script }}
{%- for c in post_commands %}
{{ c }}
{%- endfor %}
{{ sentinel_command }}
mkdir -p {{ data_dir }} && touch {{ done_marker }}
