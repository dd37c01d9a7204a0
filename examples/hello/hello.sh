#!/bin/sh
cat /app/message
echo "built on $(cat /app/facts/arch) with $(cat /app/facts/busybox-version)"
