/* The test bed's stand-in for a process that only has to be there (tests/testbed/distro.py):
 * RKE2's kubelet, MicroK8s's kubelite. It ignores its arguments (so they can be a kubelet's
 * flags, seen in /proc/PID/cmdline) and waits until a signal ends it; copied to the
 * distribution's path, its process name (comm) is that file name. This is NOT a kubelet. */
#include <unistd.h>

int main(void)
{
    for (;;)
        pause();
}
