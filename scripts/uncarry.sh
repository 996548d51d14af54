# Source on the GPU machine: unpacks .carry/ (Node on PATH, redis-server, node_modules), builds the addon and the
# prebuilt worker entry.
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
mkdir -p /tmp/bin && ln -sf /tmp/node /tmp/bin/node && export PATH=/tmp/bin:$PATH
[ -d node_modules ] || xz -dc .carry/nm.tar.xz | tar -xf -
# numactl from the carry when the machine has none (the binary, with libnuma from .carry/lib).
command -v numactl >/dev/null || { [ -f .carry/numactl ] && ln -sf "$PWD/.carry/numactl" /tmp/bin/numactl; }
export SWAPSERVE_REDIS_SERVER="$PWD/.carry/redis-server" LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}"
node native/build.mjs
node scripts/bundle.mjs
