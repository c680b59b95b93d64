# Sourced by TestRedisSuite before each unit of Redis' test suite, once the
# runner's procedures are defined (see redissuite_test.go).
#
# Against an external server the runner sends FUNCTION FLUSH before every
# unit, outside any test, to drop Redis 7 functions; tiercache has no
# functions (and no FUNCTION command), so there is nothing to flush. Every
# other command, CONFIG SET included, reaches tiercached unchanged.
if {[info commands tiercache_r] eq ""} {
    rename r tiercache_r
    proc r {args} {
        set cmd $args
        if {[string is integer [lindex $cmd 0]]} {
            set cmd [lrange $cmd 1 end]
        }
        if {[string equal -nocase [lindex $cmd 0] function] && [string equal -nocase [lindex $cmd 1] flush]} {
            return OK
        }
        tiercache_r {*}$args
    }
}
