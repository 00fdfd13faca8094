/*
 * pjproject compile-time configuration for hotline.
 *
 * build_pjsua2.py copies this file to pjlib/include/pj/config_site.h
 * before it runs configure. Its bytes are part of the wheel cache key, so
 * any change here triggers a rebuild.
 *
 * hotline is a server. It has no sound card or video, and it needs many
 * concurrent calls, players and recorders on one process. The pjproject
 * defaults (4 calls, 32 players/recorders, 254 bridge ports, 64 ioqueue
 * handles) are sized for a phone.
 */
#ifndef HOTLINE_PJ_CONFIG_SITE_H
#define HOTLINE_PJ_CONFIG_SITE_H

/* No video: no capture devices, codecs or renderers are built. Matches
 * configure --disable-video. */
#define PJMEDIA_HAS_VIDEO                 0

/* No audio device backend. The conference bridge is clocked by the null
 * sound device (AudDevManager.setNullDev()). configure --disable-sound
 * turns off PortAudio and WMME on the compiler command line; ALSA is
 * stated here too so that no build variant picks it up. */
#define PJMEDIA_AUDIO_DEV_HAS_ALSA        0

/* Concurrent calls the pjsua layer can hold. UaConfig.maxCalls is silently
 * clamped to this value (2.12.1 default: 4). */
#define PJSUA_MAX_CALLS                   1024

/* File players (announcements, music on hold). 2.12.1 default: 32. */
#define PJSUA_MAX_PLAYERS                 1024

/* File recorders (caller audio to tmpfs). 2.12.1 default: 32. */
#define PJSUA_MAX_RECORDERS               1024

/* Conference bridge slots (the default for MediaConfig.maxMediaPorts).
 * Each call, player and recorder takes one slot:
 * 1024 + 1024 + 1024 + spare = 4096. 2.12.1 default: 254. */
#define PJSUA_MAX_CONF_PORTS              4096

/* Sockets one ioqueue can watch. Each call takes an RTP and an RTCP socket,
 * plus the SIP transports: 1024 calls need about 2050 handles. 2.12.1
 * default: 64. The epoll backend (configure --enable-epoll) does not have
 * select()'s FD_SETSIZE limit of 1024 fds. The process fd limit (ulimit -n)
 * must also be raised to match. */
#define PJ_IOQUEUE_MAX_HANDLES            8192

/* Concurrent SIP transactions. Each call has an INVITE transaction, plus
 * BYE, re-INVITE, REFER, NOTIFY and INFO transactions, and every finished
 * transaction lingers for a few seconds (timer D/J). 2.12.1 default:
 * 1023. */
#define PJSIP_MAX_TSX_COUNT               ((16*1024)-1)

/* Concurrent SIP dialogs: one per call, plus REFER subscriptions.
 * 2.12.1 default: 511. */
#define PJSIP_MAX_DIALOG_COUNT            ((8*1024)-1)

/* SDP media lines ("m=") a session may have, and so the media slots of each
 * pjsua call: pjsua keeps PJSUA_MAX_CALLS x 2 x this many pjsua_call_media
 * (about 4.7 KB each) in one static table that pjsua_init() zeroes, so it is
 * resident from the start. With the 2.12.1 default of 16 that was 155 MB of
 * an idle process with 1024 calls; 4 is 39 MB. hotline uses one audio line;
 * 4 still takes offers with audio, video and data lines (the extra lines are
 * declined). An offer with more than 4 lines is rejected. */
#define PJMEDIA_MAX_SDP_MEDIA             4

#endif /* HOTLINE_PJ_CONFIG_SITE_H */
