#!/bin/sh
# Add Learn&Drop Studio to the desktop's application menu (current user only).
#   sh packaging/install-desktop-entry.sh            install
#   sh packaging/install-desktop-entry.sh --remove   remove again
# Needs the `learndrop-studio` command on PATH (pip install learndrop, or the project's .venv/bin).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
data_home=${XDG_DATA_HOME:-"$HOME/.local/share"}
apps="$data_home/applications"
icons="$data_home/icons/hicolor/scalable/apps"

if [ "${1:-}" = "--remove" ]; then
    rm -f "$apps/learndrop-studio.desktop" "$icons/learndrop.svg"
    echo "removed Learn&Drop Studio from the application menu"
    exit 0
fi

mkdir -p "$apps" "$icons"
cp "$here/learndrop-studio.desktop" "$apps/learndrop-studio.desktop"
cp "$here/../resources/learndrop.svg" "$icons/learndrop.svg"

if ! command -v learndrop-studio >/dev/null 2>&1; then
    # not on PATH: point the entry at the project's virtual environment when there is one
    venv_exec="$here/../.venv/bin/learndrop-studio"
    if [ -x "$venv_exec" ]; then
        venv_exec=$(cd "$(dirname "$venv_exec")" && pwd)/learndrop-studio
        sed -i "s|^Exec=.*|Exec=$venv_exec|; s|^TryExec=.*|TryExec=$venv_exec|" \
            "$apps/learndrop-studio.desktop"
    else
        echo "note: learndrop-studio is not on PATH; install the package before using the menu entry" >&2
    fi
fi

command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && \
    gtk-update-icon-cache -q -t "$data_home/icons/hicolor" 2>/dev/null || true
echo "installed: $apps/learndrop-studio.desktop and $icons/learndrop.svg"
