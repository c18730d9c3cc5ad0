/*
 * Stand-in for bcryptprimitives.dll, for Wine 8, which lacks it.
 *
 * The Go runtime (1.24 and later) gets its random numbers from
 * bcryptprimitives!ProcessPrng, which Windows 10 and later provide. Wine 8
 * has no such DLL, so Go test binaries die at start-up. This DLL exports
 * ProcessPrng on top of advapi32!SystemFunction036 (RtlGenRandom), which Wine
 * does have. It is only for running the Windows tests under Wine.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
		if (!SystemFunction036(data, chunk))
			return FALSE;
		data += chunk;
		len -= chunk;
	}
	return TRUE;
}
